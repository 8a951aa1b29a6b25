/**
 * A throwaway PostgreSQL cluster for tests, from Debian's `postgresql` package (`initdb` and `pg_ctl` under
 * `/usr/lib/postgresql/<version>/bin`, or on PATH): a fresh data directory in the temp dir, listening on a free
 * loopback port (and a private Unix socket directory), password authentication with SCRAM-SHA-256 for TCP, plus
 * one role whose password is stored as MD5 (and authenticated with MD5) so both of the probe's password
 * exchanges meet a real server. `initdb` refuses to run as root, so as root the cluster runs as the `postgres`
 * system user (else `nobody`) through `runuser`. `stop` shuts it down immediately and removes everything.
 *
 * Tests that need it call `unavailable()` first: it says why a cluster cannot start here (no binaries), and they
 * skip with that message, unless `SWITCHBOARD_REQUIRE_POSTGRES=1` (set by `.ci/run`) makes a missing server an
 * error instead.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

export interface Binaries {
  readonly initdb: string
  readonly pgCtl: string
  readonly psql: string | undefined
}

export interface Cluster {
  readonly host: "127.0.0.1"
  readonly port: number
  /** The superuser, authenticated with SCRAM-SHA-256 over TCP. */
  readonly user: string
  readonly password: string
  /** A database that exists besides `postgres`. */
  readonly database: string
  /** A role whose password is stored as MD5 and checked with MD5 (when psql is there to create it). */
  readonly md5User: { readonly user: string; readonly password: string } | undefined
  readonly version: string
  readonly stop: () => void
}

const versionOf = (dir: string): number => Number.parseFloat(Path.basename(Path.dirname(dir))) || 0

/** The PostgreSQL server binaries, newest version first, or `undefined` when there are none. */
export const findBinaries = (): Binaries | undefined => {
  const candidates: Array<string> = []
  const root = "/usr/lib/postgresql"
  if (Fs.existsSync(root)) {
    for (const version of Fs.readdirSync(root)) candidates.push(Path.join(root, version, "bin"))
  }
  candidates.sort((a, b) => versionOf(b) - versionOf(a))
  for (const dir of (process.env.PATH ?? "").split(Path.delimiter)) if (dir !== "") candidates.push(dir)
  for (const dir of candidates) {
    const initdb = Path.join(dir, "initdb")
    const pgCtl = Path.join(dir, "pg_ctl")
    if (Fs.existsSync(initdb) && Fs.existsSync(pgCtl)) {
      const psql = [Path.join(dir, "psql"), "/usr/bin/psql"].find((p) => Fs.existsSync(p))
      return { initdb, pgCtl, psql }
    }
  }
  return undefined
}

/** Why no cluster can start here, or `undefined` when one can. Throws when CI requires PostgreSQL and it is missing. */
export const unavailable = (): string | undefined => {
  if (findBinaries() !== undefined) return undefined
  const why =
    "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH: " +
    "install Debian's postgresql package (apt-get install -y --no-install-recommends postgresql)"
  if (process.env.SWITCHBOARD_REQUIRE_POSTGRES === "1") throw new Error(`${why} (SWITCHBOARD_REQUIRE_POSTGRES=1)`)
  return why
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = Net.createServer()
    srv.once("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as Net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })

interface RunAs {
  readonly uid: number
  readonly gid: number
  readonly name: string
}

/** Who runs the cluster: this user, or (as root) `postgres`, else `nobody`. */
const runAs = (): RunAs | undefined => {
  if (process.getuid?.() !== 0) return undefined
  const passwd = Fs.readFileSync("/etc/passwd", "utf8").split("\n")
  for (const name of ["postgres", "nobody"]) {
    const line = passwd.find((l) => l.startsWith(`${name}:`))
    if (line === undefined) continue
    const [, , uid = "", gid = ""] = line.split(":")
    return { name, uid: Number(uid), gid: Number(gid) }
  }
  throw new Error("running as root, and there is neither a postgres nor a nobody user to run PostgreSQL as")
}

const run = (who: RunAs | undefined, file: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) => {
  const [command, argv] = who === undefined ? [file, [...args]] : ["runuser", ["-u", who.name, "--", file, ...args]]
  return execFileSync(command, argv, {
    env: { ...process.env, LC_ALL: "C", LANG: "C", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 60_000,
    encoding: "utf8"
  })
}

/** Start a cluster (about a second of initdb and start-up); the caller must `stop` it. */
export const start = async (): Promise<Cluster> => {
  const binaries = findBinaries()
  if (binaries === undefined) throw new Error(unavailable() ?? "no PostgreSQL binaries")
  const who = runAs()
  const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-pg-"))
  const data = Path.join(root, "data")
  const sockets = Path.join(root, "sock")
  const log = Path.join(root, "server.log")
  const pwfile = Path.join(root, "pw")
  const user = "sb_admin"
  const password = "Sup3r-Secret-Passw0rd!"
  Fs.mkdirSync(sockets, { mode: 0o700 })
  Fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 })
  if (who !== undefined) {
    Fs.chmodSync(root, 0o700)
    for (const p of [root, sockets, pwfile]) Fs.chownSync(p, who.uid, who.gid)
  }
  const port = await freePort()
  let started = false
  const stop = () => {
    if (started) {
      try {
        run(who, binaries.pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"])
      } catch {
        // Already stopped.
      }
      started = false
    }
    Fs.rmSync(root, { recursive: true, force: true })
  }
  try {
    run(who, binaries.initdb, [
      "-D",
      data,
      "-U",
      user,
      `--pwfile=${pwfile}`,
      "--auth-host=scram-sha-256",
      "--auth-local=scram-sha-256",
      "--encoding=UTF8",
      "--no-sync"
    ])
    // The MD5 role's line goes first: pg_hba.conf is read top-down.
    const hba = Path.join(data, "pg_hba.conf")
    Fs.writeFileSync(hba, `host all sb_md5 127.0.0.1/32 md5\n${Fs.readFileSync(hba, "utf8")}`)
    run(who, binaries.pgCtl, [
      "-D",
      data,
      "-l",
      log,
      "-w",
      "-t",
      "60",
      "-o",
      `-c listen_addresses=127.0.0.1 -p ${port} -k ${sockets} -c fsync=off -c max_connections=20`,
      "start"
    ])
    started = true
    const version = run(who, binaries.pgCtl, ["--version"]).trim()
    let md5User: Cluster["md5User"]
    if (binaries.psql !== undefined) {
      const md5Password = "md5-Passw0rd-2024"
      // One -c per session: the SET must share its session with the CREATE ROLE it applies to.
      const sql = [
        "CREATE DATABASE analytics",
        `SET password_encryption = 'md5'; CREATE ROLE sb_md5 LOGIN PASSWORD '${md5Password}'`
      ]
      for (const statement of sql) {
        run(
          who,
          binaries.psql,
          ["-h", sockets, "-p", String(port), "-U", user, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", statement],
          {
            PGPASSWORD: password
          }
        )
      }
      md5User = { user: "sb_md5", password: md5Password }
    }
    return {
      host: "127.0.0.1",
      port,
      user,
      password,
      database: md5User === undefined ? "postgres" : "analytics",
      md5User,
      version,
      stop
    }
  } catch (error) {
    const serverLog = Fs.existsSync(log) ? Fs.readFileSync(log, "utf8").slice(-2000) : ""
    stop()
    const stderr = (error as { stderr?: string }).stderr ?? ""
    throw new Error(`starting PostgreSQL failed: ${String(error)}\n${stderr}\n${serverLog}`, { cause: error })
  }
}
