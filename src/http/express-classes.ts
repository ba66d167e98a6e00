/**
 * The classes P's HTTP server builds its requests and responses from: Node's own, extended with
 * express's request and response members (issue 14).
 *
 * Express gives every request and response it handles its own prototypes
 * (`Object.setPrototypeOf(req, app.request)` in `app.handle`), and everything that touched those
 * objects afterwards ran slower — Node's HTTP code, koa and oidc-provider alike. Measured with the
 * bench's bare oidc-provider anchor (docs/performance.md, *Express's prototypes*): behind a
 * one-line express app it spent 100–135 µs more CPU per `/token` and `/register` request than
 * alone; with only the two `Object.setPrototypeOf` calls and no express at all, the same; with the
 * classes below, within a few µs of the engine alone. (Why V8 pays it was not pinned down: objects
 * built through `Reflect.construct` with express's prototype chain were as slow as swapped ones,
 * objects built by a subclass's own constructor were not.)
 *
 * So the server is created with subclasses of `IncomingMessage` and `ServerResponse` that carry
 * every member of `app.request` and `app.response` (express's methods and getters, and `app`
 * itself), and `app.request` / `app.response` become those subclasses' prototypes: a request
 * made by this server already has the prototype express would give it, and express's
 * `setPrototypeOf` changes nothing. Requests from any other server (supertest in the tests) are
 * still given it by express, as before. Nothing else changes: the same members, read from one
 * prototype instead of two.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Express } from 'express';

export interface ServerClasses {
  IncomingMessage: typeof IncomingMessage;
  ServerResponse: typeof ServerResponse;
}

/** Copy every member `from` and its prototypes define, down to (not including) `base`, onto `onto`; the nearest wins. */
function copyMembers(from: object, base: object, onto: object): void {
  for (let proto: object | null = from; proto !== null && proto !== base; proto = Object.getPrototypeOf(proto) as object | null) {
    for (const key of Reflect.ownKeys(proto)) {
      if (key === 'constructor' || Object.prototype.hasOwnProperty.call(onto, key)) continue;
      Object.defineProperty(onto, key, Object.getOwnPropertyDescriptor(proto, key) as PropertyDescriptor);
    }
  }
}

/**
 * The request and response classes for `app`'s server (`http.createServer(classes, listener)`).
 * Call once per app, before it handles a request; `app.request` and `app.response` are replaced.
 */
export function expressServerClasses(app: Express): ServerClasses {
  if (!(app.request instanceof IncomingMessage && app.response instanceof ServerResponse)) {
    throw new Error("express's request and response do not extend Node's: cannot build the server's classes");
  }
  class AppRequest extends IncomingMessage {}
  class AppResponse extends ServerResponse {}
  copyMembers(app.request, IncomingMessage.prototype, AppRequest.prototype);
  copyMembers(app.response, ServerResponse.prototype, AppResponse.prototype);
  app.request = AppRequest.prototype as Express['request'];
  app.response = AppResponse.prototype as Express['response'];
  // (ServerResponse's type is generic over its request type; AppResponse takes any IncomingMessage, as it does.)
  return { IncomingMessage: AppRequest, ServerResponse: AppResponse as unknown as typeof ServerResponse };
}
