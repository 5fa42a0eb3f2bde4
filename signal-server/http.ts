/**
 * The plain HTTP side of the signal server: `/healthz`, `/metrics`, and the
 * built demo page and bundles from a static folder. socket.io takes
 * `/socket.io/` before these handlers see anything. Every answer allows any
 * origin: the bundle is meant to be embedded in other sites.
 */
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join, resolve, sep } from 'node:path'

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
}

export function contentTypeOf(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream'
}

const NOT_BUILT = `<!doctype html>
<meta charset="utf-8">
<title>weft signal server</title>
<h1>weft signal server</h1>
<p>The signal server is running, but the demo page is not built.</p>
<p>Build it with <code>npm run build</code> (it writes <code>dist/web</code>), then start again with
<code>npm start</code>. <a href="/healthz">/healthz</a> and <a href="/metrics">/metrics</a> work already.</p>
`

export interface HttpDeps {
  staticDir: string | undefined
  health(): { status: number; body: Record<string, unknown> }
  prometheus(): string
}

/** A `request` listener for node:http. Never throws. */
export function createHttpHandler(deps: HttpDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const root = deps.staticDir === undefined ? undefined : resolve(deps.staticDir)
  return (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n')
      else res.destroy()
    })
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('Access-Control-Allow-Origin', '*')
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS')
      res.setHeader('Access-Control-Allow-Headers', '*')
      res.writeHead(204).end()
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD, OPTIONS')
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n')
      return
    }
    let pathname: string
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    } catch {
      send(res, 400, 'text/plain; charset=utf-8', 'bad request\n')
      return
    }
    if (pathname === '/healthz') {
      const { status, body } = deps.health()
      res.setHeader('Cache-Control', 'no-store')
      send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`, req.method === 'HEAD')
      return
    }
    if (pathname === '/metrics') {
      res.setHeader('Cache-Control', 'no-store')
      send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', deps.prometheus(), req.method === 'HEAD')
      return
    }
    const file = root === undefined ? undefined : await findFile(root, pathname)
    if (file) {
      res.setHeader('Content-Type', contentTypeOf(file.path))
      res.setHeader('Content-Length', file.size)
      res.setHeader('Cache-Control', 'no-cache')
      res.setHeader('X-Content-Type-Options', 'nosniff')
      res.writeHead(200)
      if (req.method === 'HEAD') {
        res.end()
        return
      }
      const stream = createReadStream(file.path)
      stream.on('error', () => res.destroy())
      stream.pipe(res)
      return
    }
    if (pathname === '/' || pathname === '/index.html') {
      send(res, 200, 'text/html; charset=utf-8', NOT_BUILT, req.method === 'HEAD')
      return
    }
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n', req.method === 'HEAD')
  }
}

async function findFile(root: string, pathname: string): Promise<{ path: string; size: number } | undefined> {
  if (pathname.includes('\0')) return undefined
  const rel = pathname === '/' ? 'index.html' : pathname.replace(/^\/+/, '')
  const path = resolve(join(root, rel))
  if (path !== root && !path.startsWith(root + sep)) return undefined
  try {
    const s = await stat(path)
    if (s.isFile()) return { path, size: s.size }
    if (s.isDirectory()) {
      const index = join(path, 'index.html')
      const si = await stat(index)
      if (si.isFile()) return { path: index, size: si.size }
    }
  } catch {
    // missing: fall through
  }
  return undefined
}

function send(res: ServerResponse, status: number, type: string, body: string, headOnly = false): void {
  res.setHeader('Content-Type', type)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.writeHead(status)
  res.end(headOnly ? undefined : body)
}
