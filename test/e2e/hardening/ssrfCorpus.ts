/**
 * The SSRF corpus of the daemon-level runs (ssrfRun.ts, ssrfOAuthRun.ts): 56 inputs, numeric, octal and hex IPv4,
 * IPv6 mapped, compatible, NAT64 and 6to4 forms, metadata addresses, `0.0.0.0`, userinfo tricks, unicode hosts,
 * non-http schemes and names that resolve to loopback; and the counting listeners on every port it names.
 */
import * as Net from "node:net"

export const corpus: ReadonlyArray<string> = [
  "http://127.0.0.1/",
  "http://2130706433/",
  "http://0177.0.0.1/",
  "http://0x7f.1/",
  "http://127.1/",
  "http://0x7f000001/",
  "http://017700000001/",
  "http://0x7f.0x0.0x0.0x1/",
  "http://127.000.000.001:8080/",
  "http://127.0.0.1./",
  "http://%31%32%37.0.0.1/",
  "http://①②⑦.0.0.1/",
  "http://１２７.０.０.１/",
  "http://0/",
  "http://0.0.0.0:8080/",
  "http://10.0.0.5/",
  "http://172.16.3.4/",
  "http://192.168.1.1/",
  "http://100.64.0.1/",
  "http://169.254.169.254/latest/meta-data/",
  "http://0xa9fea9fe/",
  "http://100.100.100.200/",
  "http://[fd00:ec2::254]/",
  "http://[::1]/",
  "http://[0000::1]:80/",
  "http://[::]/",
  "http://[::ffff:127.0.0.1]/",
  "http://[::ffff:7f00:1]/",
  "http://[::ffff:a9fe:a9fe]/",
  "http://[0:0:0:0:0:ffff:10.0.0.1]/",
  "http://[::127.0.0.1]/",
  "http://[64:ff9b::7f00:1]/",
  "http://[64:ff9b::a9fe:a9fe]/",
  "http://[2002:7f00:1::]/",
  "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
  "http://[fe80::1]/",
  "http://[fc00::1]/",
  "http://224.0.0.1/",
  "http://255.255.255.255/",
  "http://a@127.0.0.1/",
  "http://example.com@127.0.0.1/",
  "http://127.0.0.1:80@example.com/",
  "http://127.0.0.1#@example.com/",
  "http://127.0.0.1\\@example.com/",
  "http://127.0.0.1.nip.io/",
  "http://LOCALHOST/",
  "http://localhost./",
  "http://ⓛocalhost/",
  "http://metadata.google.internal/computeMetadata/v1/",
  "https://127.0.0.1/",
  "https://[::1]:443/",
  "file:///etc/passwd",
  "gopher://127.0.0.1:70/_GET",
  "ftp://127.0.0.1/",
  "javascript:alert(1)",
  "http://127.0.0.1:5432/"
]

/** The ports the corpus names (as root in the namespace, the privileged ones too). */
export const corpusPorts: ReadonlyArray<number> = [80, 443, 8080, 70, 21, 5432]

/**
 * Listeners on every corpus port and every address of the namespace that record each connection that arrives,
 * checked first with a control: a direct connection to loopback over IPv4 and one over IPv6 (`control` is 2).
 */
export const countingListeners = async () => {
  const arrivals: Array<string> = []
  const servers = await Promise.all(
    corpusPorts.map(
      (port) =>
        new Promise<Net.Server>((resolve, reject) => {
          const server = Net.createServer((socket) => {
            arrivals.push(`${socket.remoteAddress} → ${socket.localAddress}:${port}`)
            socket.destroy()
          })
          server.once("error", reject)
          // `::` without ipv6Only takes IPv4 too: every address the namespace has.
          server.listen({ port, host: "::", ipv6Only: false }, () => resolve(server))
        })
    )
  )
  for (const [host, port] of [
    ["127.0.0.1", 8080],
    ["::1", 80]
  ] as const) {
    // oxlint-disable-next-line no-await-in-loop -- one control connection at a time
    await new Promise<void>((resolve) => {
      const c = Net.createConnection({ host, port }, () => c.end())
      c.on("close", () => resolve())
      c.on("error", () => resolve())
    })
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  const control = arrivals.splice(0).length
  return {
    arrivals,
    control,
    close: () => {
      for (const server of servers) server.close()
    }
  }
}
