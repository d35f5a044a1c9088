// The Prometheus endpoint (`dst engine --metrics-listen ADDR:PORT`): a node:http server answering
// GET /metrics with the text exposition of what `collect` returns at that moment (nothing is kept
// between scrapes but the engine's own counters), 404 for any other path, 405 for other methods.
// Scrapes run on the event loop like everything else: a collection is a walk over the nodes'
// counters and histograms, no I/O.
import http from 'node:http';
import { DstError, errnoOf } from '../../util/errors.js';
import { formatHostPort, type HostPort } from '../../util/parse.js';
import type { Logger } from '../../util/log.js';
import type { Clock } from '../../util/clock.js';
import { parseHostPort } from '../../util/parse.js';
import type { CryptoPool } from '../crypto-pool.js';
import { pooledBytes } from '../io/payload-pool.js';
import type { Registry } from '../registry.js';
import { EngineProbe, collectFamilies, nodeSamples } from './collect.js';
import { exposition, type Family } from './exposition.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A scrape request's headers must arrive within this; the server holds no idle connection longer than KEEP_ALIVE_MS. */
const HEADERS_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_MS = 5_000;
/** scrapers are few; a bound keeps a flood from holding sockets */
const MAX_CONNECTIONS = 16;

export interface MetricsServer {
  /** the bound address (the real port when 0 was asked), as ADDR:PORT */
  readonly address: string;
  close(): Promise<void>;
}

export async function startMetricsServer(o: { listen: HostPort; collect: () => Family[]; log: Logger }): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('only GET\n');
      return;
    }
    let body: string;
    try {
      body = exposition(o.collect());
    } catch (err) {
      o.log.error(`metrics collection failed: ${(err as Error).message}`);
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      return;
    }
    res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = HEADERS_TIMEOUT_MS;
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.maxConnections = MAX_CONNECTIONS;
  // the control server decides when the engine ends; this one never keeps it alive
  server.unref();
  const want = formatHostPort(o.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new DstError('DST_ERR_BUSY', `cannot serve metrics on ${want}: ${err.message}`, { errno: errnoOf(err), cause: err })));
    server.listen(o.listen.port, o.listen.host, () => resolve());
  });
  server.on('error', (err) => o.log.error(`metrics listener: ${err.message}`, { errno: errnoOf(err) }));
  const a = server.address();
  const address = formatHostPort({ host: o.listen.host, port: a !== null && typeof a === 'object' ? a.port : o.listen.port });
  o.log.info(`metrics on http://${address}/metrics`);
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/** The engine's endpoint over its registry (null when `listen` is null: off). */
export async function startEngineMetrics(listen: string | null, registry: Registry, pool: CryptoPool, log: Logger, clock: Clock): Promise<MetricsServer | null> {
  if (listen === null) return null;
  const probe = new EngineProbe({ cryptoBusySeconds: () => pool.busySeconds(), payloadPoolFreeBytes: pooledBytes, clock });
  try {
    const srv = await startMetricsServer({ listen: parseHostPort(listen, 'metrics listen address'), collect: () => collectFamilies(nodeSamples(registry), probe.sample()), log });
    return { address: srv.address, close: async () => { probe.close(); await srv.close(); } };
  } catch (err) {
    probe.close();
    throw err;
  }
}
