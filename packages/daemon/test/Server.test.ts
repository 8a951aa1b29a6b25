/**
 * Socket security and who calls: the socket directory is private (0700, ours, not a symlink) or refused, the
 * socket is 0600, a stale socket is replaced and a live one is not, and the principal comes from the trusted
 * headers only when the configuration allows them. Also the data directory, socket path and config rules.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Principal from "@switchboard/core/Principal"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { afterAll } from "vitest"
import * as Layers from "../src/Layers.ts"
import * as Server from "../src/Server.ts"
import { rawRequest, serverLayer, tempDir } from "./support.ts"

const root = tempDir()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))
let n = 0
const fresh = () => {
  const dir = Path.join(root, `t${n++}`)
  Fs.mkdirSync(dir, { mode: 0o700 })
  return dir
}

const local = Principal.local("tester")

describe("principal", () => {
  it.effect("the local user without headers; headers only when trusted", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* Server.principalOf({}, { trustHeaders: false, principal: local }), local)
      assert.deepStrictEqual(yield* Server.principalOf({}, { trustHeaders: true, principal: local }), local)
      const untrusted = yield* Effect.flip(
        Server.principalOf({ "x-switchboard-user": "bob" }, { trustHeaders: false, principal: local })
      )
      assert.strictEqual(untrusted.error.code, "invalid_parameter")
      assert.include(untrusted.error.message, "does not trust")
      const bob = yield* Server.principalOf(
        { "x-switchboard-user": "bob", "x-switchboard-org": "acme", "x-switchboard-role": "editor" },
        { trustHeaders: true, principal: local }
      )
      assert.deepStrictEqual(bob, { org: "acme", workspace: "default", user: "bob", role: "editor" })
      // What a trusted caller leaves out is the least: the viewer role.
      const quiet = yield* Server.principalOf(
        { "x-switchboard-user": "carol" },
        { trustHeaders: true, principal: local }
      )
      assert.strictEqual(quiet.role, "viewer")
      const noUser = yield* Effect.flip(
        Server.principalOf({ "x-switchboard-role": "admin" }, { trustHeaders: true, principal: local })
      )
      assert.strictEqual(noUser.error.code, "invalid_parameter")
      const bad = yield* Effect.flip(
        Server.principalOf(
          { "x-switchboard-user": "a b", "x-switchboard-role": "root" },
          { trustHeaders: true, principal: local }
        )
      )
      assert.sameMembers(
        ((bad.error.details as { issues: Array<{ path: string }> }).issues ?? []).map((i) => i.path),
        ["x-switchboard-user", "x-switchboard-role"]
      )
    })
  )
})

describe("socket directory", () => {
  it.effect("is created 0700", () =>
    Effect.gen(function* () {
      const dir = Path.join(fresh(), "a", "b")
      yield* Server.ensurePrivateDirectory(dir)
      assert.strictEqual(Fs.statSync(dir).mode & 0o777, 0o700)
    })
  )

  it.effect("with group or other permissions is refused", () =>
    Effect.gen(function* () {
      const dir = Path.join(fresh(), "open")
      Fs.mkdirSync(dir, { mode: 0o700 })
      Fs.chmodSync(dir, 0o755)
      const error = yield* Effect.flip(Server.ensurePrivateDirectory(dir))
      assert.strictEqual(error.reason, "socket_insecure")
      assert.include(error.message, "mode 0755")
      assert.include(error.message, `chmod 700 ${dir}`)
    })
  )

  it.effect("that is a symbolic link is refused, even to a private directory", () =>
    Effect.gen(function* () {
      const base = fresh()
      const target = Path.join(base, "target")
      Fs.mkdirSync(target, { mode: 0o700 })
      const link = Path.join(base, "link")
      Fs.symlinkSync(target, link)
      const error = yield* Effect.flip(Server.ensurePrivateDirectory(link))
      assert.strictEqual(error.reason, "socket_insecure")
      assert.include(error.message, "symbolic link")
    })
  )

  it.effect.skipIf(process.getuid?.() !== 0)("owned by another user is refused", () =>
    Effect.gen(function* () {
      const dir = Path.join(fresh(), "theirs")
      Fs.mkdirSync(dir, { mode: 0o700 })
      Fs.chownSync(dir, 4242, 4242)
      const error = yield* Effect.flip(Server.ensurePrivateDirectory(dir))
      assert.strictEqual(error.reason, "socket_insecure")
      assert.include(error.message, "owned by uid 4242")
    })
  )
})

const listenOn = (path: string) =>
  Effect.acquireRelease(
    Effect.callback<Net.Server>((resume) => {
      const server = Net.createServer((socket) => socket.end())
      server.listen(path, () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  )

describe("socket file", () => {
  it.effect("a stale socket (nobody listening) is removed", () =>
    Effect.gen(function* () {
      const dir = fresh()
      const socket = Path.join(dir, "s.sock")
      // A hard link keeps the socket file after its server closes: what a killed daemon leaves behind.
      yield* Effect.scoped(
        Effect.andThen(
          listenOn(Path.join(dir, "live.sock")),
          Effect.sync(() => Fs.linkSync(Path.join(dir, "live.sock"), socket))
        )
      )
      assert.isTrue(Fs.lstatSync(socket).isSocket())
      assert.strictEqual(yield* Server.probeSocket(socket), "stale")
      yield* Server.clearStaleSocket(socket)
      assert.isFalse(Fs.existsSync(socket))
    })
  )

  it.effect("a live socket is kept and refused with a clear message", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const socket = Path.join(fresh(), "s.sock")
        yield* listenOn(socket)
        const error = yield* Effect.flip(Server.clearStaleSocket(socket))
        assert.strictEqual(error.reason, "daemon_running")
        assert.include(error.message, `a daemon is already listening on ${socket}`)
        assert.isTrue(Fs.existsSync(socket))
      })
    )
  )

  it.effect("a file that is not a socket is refused, not removed", () =>
    Effect.gen(function* () {
      const socket = Path.join(fresh(), "s.sock")
      Fs.writeFileSync(socket, "not a socket")
      const error = yield* Effect.flip(Server.clearStaleSocket(socket))
      assert.strictEqual(error.reason, "socket_insecure")
      assert.strictEqual(Fs.readFileSync(socket, "utf8"), "not a socket")
    })
  )

  it.effect("a path too long for a Unix socket is refused before anything is created", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Server.prepareSocket(Path.join(fresh(), "x".repeat(120), "s.sock")))
      assert.include(error.message, "longer than")
    })
  )
})

describe("server", () => {
  it.live("listens with a 0600 socket; a second server on the same socket is refused; closing removes it", () =>
    Effect.gen(function* () {
      const socket = Path.join(fresh(), "run", "switchboard.sock")
      const second = yield* Effect.scoped(
        Effect.gen(function* () {
          yield* Layer.build(serverLayer(socket))
          const stat = Fs.lstatSync(socket)
          assert.isTrue(stat.isSocket())
          assert.strictEqual(stat.mode & 0o777, 0o600)
          assert.strictEqual(Fs.statSync(Path.dirname(socket)).mode & 0o777, 0o700)
          const exit = yield* Effect.exit(Effect.scoped(Layer.build(serverLayer(socket))))
          // The first one still answers.
          const health = yield* Effect.promise(() => rawRequest(socket, "GET", "/healthz"))
          assert.strictEqual(health.status, 200)
          return exit
        })
      )
      assert.isTrue(Exit.isFailure(second))
      assert.include(String(Exit.isFailure(second) ? second.cause : ""), "a daemon is already listening on")
      assert.isFalse(Fs.existsSync(socket))
    })
  )
})

describe("paths and configuration", () => {
  it("data directory: SWITCHBOARD_HOME, else XDG_DATA_HOME/switchboard, else ~/.local/share/switchboard", () => {
    assert.strictEqual(Layers.dataDir({ env: { SWITCHBOARD_HOME: "/h" }, homedir: "/home/u" }), "/h")
    assert.strictEqual(
      Layers.dataDir({ env: { SWITCHBOARD_HOME: "/h" }, home: "/given", homedir: "/home/u" }),
      "/given"
    )
    assert.strictEqual(Layers.dataDir({ env: { XDG_DATA_HOME: "/x" }, homedir: "/home/u" }), "/x/switchboard")
    // A relative XDG path is invalid per the spec and ignored.
    assert.strictEqual(
      Layers.dataDir({ env: { XDG_DATA_HOME: "rel" }, homedir: "/home/u" }),
      "/home/u/.local/share/switchboard"
    )
    assert.strictEqual(Layers.dataDir({ env: {}, homedir: "/home/u" }), "/home/u/.local/share/switchboard")
  })

  it("socket: SWITCHBOARD_SOCKET, else XDG_RUNTIME_DIR/switchboard, else the data directory", () => {
    const base = { SWITCHBOARD_HOME: "/h" }
    assert.strictEqual(Layers.resolvePaths({ env: base }).socket, "/h/switchboard.sock")
    assert.strictEqual(
      Layers.resolvePaths({ env: { ...base, XDG_RUNTIME_DIR: "/run/user/1000" } }).socket,
      "/run/user/1000/switchboard/switchboard.sock"
    )
    assert.strictEqual(
      Layers.resolvePaths({ env: { ...base, XDG_RUNTIME_DIR: "/r", SWITCHBOARD_SOCKET: "/s/x.sock" } }).socket,
      "/s/x.sock"
    )
    const paths = Layers.resolvePaths({ env: base })
    assert.deepStrictEqual(
      [paths.database, paths.config, paths.pidFile],
      ["/h/switchboard.db", "/h/config.json", "/h/daemon.pid"]
    )
  })

  it.effect("config.json and SWITCHBOARD_TRUST_HEADERS", () =>
    Effect.gen(function* () {
      const home = fresh()
      const paths = Layers.resolvePaths({ env: { SWITCHBOARD_HOME: home } })
      assert.deepStrictEqual(yield* Layers.readConfig(paths, {}), {
        trustHeaders: false,
        shutdownTimeoutMs: Layers.defaultShutdownTimeoutMs,
        allowPrivateNetwork: false
      })
      Fs.writeFileSync(
        paths.config,
        JSON.stringify({ trust_headers: true, shutdown_timeout_ms: 500, allow_private_network: true, future: 1 })
      )
      assert.deepStrictEqual(yield* Layers.readConfig(paths, {}), {
        trustHeaders: true,
        shutdownTimeoutMs: 500,
        allowPrivateNetwork: true
      })
      assert.isFalse((yield* Layers.readConfig(paths, { SWITCHBOARD_TRUST_HEADERS: "0" })).trustHeaders)
      const badEnv = yield* Effect.flip(Layers.readConfig(paths, { SWITCHBOARD_TRUST_HEADERS: "maybe" }))
      assert.strictEqual(badEnv.reason, "config_invalid")
      Fs.writeFileSync(paths.config, JSON.stringify({ trust_headers: "yes" }))
      const badFile = yield* Effect.flip(Layers.readConfig(paths, {}))
      assert.strictEqual(badFile.reason, "config_invalid")
      Fs.writeFileSync(paths.config, "{")
      assert.include((yield* Effect.flip(Layers.readConfig(paths, {}))).message, "not valid JSON")
    })
  )

  it("the local principal is the OS user, admin of local/default", () => {
    assert.deepStrictEqual(Layers.localPrincipal("ada"), Principal.local("ada"))
    assert.deepStrictEqual(Layers.localPrincipal("not valid!"), Principal.local("local"))
    assert.strictEqual(Layers.localPrincipal().role, "admin")
  })
})
