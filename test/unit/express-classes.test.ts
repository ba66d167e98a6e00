/**
 * expressServerClasses (src/http/express-classes.ts): a server created with an app's classes
 * hands express requests and responses that already have the prototypes express gives them, so
 * express's `Object.setPrototypeOf` changes nothing; every express member still works, each app
 * keeps its own `req.app`, and a request from a plain server is still handled as before.
 */
import { createServer, IncomingMessage, ServerResponse, type Server } from 'node:http';
import express, { type Express } from 'express';
import supertest from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { expressServerClasses } from '../../src/http/express-classes.js';
import { listen } from '../../src/runtime/server.js';
import { listenLoopback, startTestApp } from '../helpers/app.js';

const servers: Server[] = [];
afterEach(() =>
  servers.splice(0).forEach((s) => {
    s.closeAllConnections();
    s.close();
  }),
);

/** An app whose one route answers with what express's members say about the request. */
function probeApp(name: string): { app: Express; arrived: boolean[] } {
  const app = express();
  app.set('trust proxy', 'loopback');
  app.set('name', name);
  const arrived: boolean[] = [];
  app.get('/probe/:id', (req, res) => {
    res
      .status(201)
      .set('X-Probe', 'yes')
      .json({
        app: (req.app.get('name') as string) + (res.app === req.app ? '' : ' (res.app differs)'),
        ip: req.ip,
        path: req.path,
        query: req.query,
        params: req.params,
        host: req.get('host')?.startsWith('127.0.0.1:'),
        accepts: req.accepts('json'),
        ownPrototype: Object.getPrototypeOf(req) === app.request && Object.getPrototypeOf(res) === app.response,
      });
  });
  return { app, arrived };
}

async function serve(app: Express, arrived: boolean[]): Promise<string> {
  const classes = expressServerClasses(app);
  const server = createServer(classes, (req, res) => {
    // what express would have to change when the request reaches it
    arrived.push(Object.getPrototypeOf(req) === app.request && Object.getPrototypeOf(res) === app.response);
    app(req, res);
  });
  servers.push(server);
  return `http://127.0.0.1:${await listenLoopback(server)}`;
}

describe('the server classes of an express app', () => {
  it("makes requests and responses with express's prototypes already set, and every express member works", async () => {
    const { app, arrived } = probeApp('one');
    const url = await serve(app, arrived);
    const res = await fetch(`${url}/probe/7?x=1&y=two`, { headers: { 'x-forwarded-for': '203.0.113.9', accept: 'application/json' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-probe')).toBe('yes');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({
      app: 'one',
      ip: '203.0.113.9', // req.ip through 'trust proxy' (a getter that reads this.app)
      path: '/probe/7',
      query: { x: '1', y: 'two' },
      params: { id: '7' },
      host: true,
      accepts: 'json',
      ownPrototype: true,
    });
    expect(arrived).toEqual([true]); // express's setPrototypeOf had nothing to change
  });

  it('keeps each app its own: two apps in one process answer with their own app', async () => {
    const one = probeApp('one');
    const two = probeApp('two');
    const [urlOne, urlTwo] = [await serve(one.app, one.arrived), await serve(two.app, two.arrived)];
    expect(((await (await fetch(`${urlTwo}/probe/1`)).json()) as { app: string }).app).toBe('two');
    expect(((await (await fetch(`${urlOne}/probe/1`)).json()) as { app: string }).app).toBe('one');
    expect([...one.arrived, ...two.arrived]).toEqual([true, true]);
  });

  it('still serves requests made by a plain Node server (express sets the prototypes, as before)', async () => {
    const { app } = probeApp('plain');
    expressServerClasses(app);
    const res = await supertest(app).get('/probe/3?z=9'); // supertest's own server: IncomingMessage, ServerResponse
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ app: 'plain', path: '/probe/3', query: { z: '9' }, params: { id: '3' }, ownPrototype: true });
  });

  it("subclasses Node's classes and leaves Node's own prototypes alone", () => {
    const { app } = probeApp('x');
    const before = [Reflect.ownKeys(IncomingMessage.prototype).length, Reflect.ownKeys(ServerResponse.prototype).length];
    const classes = expressServerClasses(app);
    expect(Object.getPrototypeOf(classes.IncomingMessage.prototype)).toBe(IncomingMessage.prototype);
    expect(Object.getPrototypeOf(classes.ServerResponse.prototype)).toBe(ServerResponse.prototype);
    expect([Reflect.ownKeys(IncomingMessage.prototype).length, Reflect.ownKeys(ServerResponse.prototype).length]).toEqual(before);
    expect('json' in ServerResponse.prototype).toBe(false);
  });

  it("P's own server (`listen`, as `serve` runs it) and the tests' (and bench's) app are created with the runtime's classes", async () => {
    const testApp = await startTestApp();
    const running = await listen(testApp.runtime, 0, '127.0.0.1');
    try {
      const arrived: boolean[] = [];
      for (const server of [running.server, testApp.server]) {
        server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
          arrived.push(Object.getPrototypeOf(req) === testApp.runtime.app.request && Object.getPrototypeOf(res) === testApp.runtime.app.response);
        });
      }
      expect((await fetch(`${testApp.url}/healthz`)).status).toBe(200); // test/helpers/app.ts's server
      const health = await fetch(`${running.url}/healthz`);
      expect(health.status).toBe(200);
      expect(health.headers.get('x-request-id')).toBeTruthy();
      expect(health.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      const token = await fetch(`${running.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=refresh_token&refresh_token=nope&client_id=nobody',
      });
      expect(token.status).toBe(401); // the provider's answer (invalid_client), through express's chain
      expect(arrived).toEqual([true, true, true]);
    } finally {
      await running.close();
      await testApp.close();
    }
  });

  it("refuses an app whose request or response does not extend Node's", () => {
    const { app } = probeApp('odd');
    app.request = Object.create(null) as Express['request'];
    expect(() => expressServerClasses(app)).toThrow(/do not extend Node's/);
  });
});
