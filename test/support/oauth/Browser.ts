/**
 * A user agent without a browser: follows an authorization URL through the authorization server's redirects
 * (keeping its cookies, as a browser would) until it reaches the redirect URI, and either returns that callback URL
 * or also loads it (to deliver the callback to a listener). The test server's interaction route logs in and
 * consents by itself, so no page needs a human.
 */
export interface Followed {
  /** The callback URL the authorization server redirected to. */
  readonly callback: URL
  /** When the callback was loaded: its status and body. */
  readonly response?: { readonly status: number; readonly body: string } | undefined
}

const cookieHeader = (jar: Map<string, string>) => [...jar].map(([k, v]) => `${k}=${v}`).join("; ")

/**
 * Follow `url` until a redirect goes to `redirectUri` (by prefix). With `deliver`, the callback is loaded too.
 */
export const follow = (url: string, redirectUri: string, options: { deliver?: boolean } = {}): Promise<Followed> => {
  const jar = new Map<string, string>()
  const step = async (current: string, hop: number): Promise<Followed> => {
    if (hop >= 25) throw new Error("too many redirects while authorizing")
    if (current.startsWith(redirectUri)) {
      if (options.deliver !== true) return { callback: new URL(current) }
      const response = await fetch(current, { redirect: "manual" })
      return { callback: new URL(current), response: { status: response.status, body: await response.text() } }
    }
    const response = await fetch(current, { redirect: "manual", headers: { cookie: cookieHeader(jar) } })
    for (const cookie of response.headers.getSetCookie()) {
      const [pair = ""] = cookie.split(";")
      const eq = pair.indexOf("=")
      if (eq > 0) jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim())
    }
    const location = response.headers.get("location")
    if (response.status >= 300 && response.status < 400 && location !== null) {
      await response.body?.cancel()
      return step(new URL(location, current).href, hop + 1)
    }
    const body = await response.text()
    throw new Error(
      `the authorization stopped at HTTP ${response.status} (${current.split("?")[0]}): ${body.slice(0, 500)}`
    )
  }
  return step(url, 0)
}

/** The query of a callback URL, as the callback handler takes it. */
export const paramsOf = (callback: URL): Record<string, string> => Object.fromEntries(callback.searchParams)
