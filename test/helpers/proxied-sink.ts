// A sink server behind the product's fault proxy (in process), both closed when the test ends.
import type { TestContext } from 'node:test';
import { FaultProxy, type FaultProxyOptions } from '../../src/faultproxy/proxy.js';
import { startSinkServer, type TestServer } from './net-testkit.js';

export async function proxiedSink(t: TestContext, opts: Omit<FaultProxyOptions, 'listen' | 'target'> = {}):
  Promise<{ server: TestServer; proxy: FaultProxy; port: number }> {
  const server = await startSinkServer();
  t.after(() => server.close());
  const proxy = new FaultProxy({ listen: '127.0.0.1:0', target: server.address, ...opts });
  const { port } = await proxy.start();
  t.after(() => proxy.close());
  return { server, proxy, port };
}
