# MCP Consent Proxy — container image.
#   docker build -t mcp-consent-proxy .
#   docker run -p 8080:8080 -v mcp-proxy-data:/data --env-file proxy.env mcp-consent-proxy
# Multi-stage. The build stage installs every dependency (better-sqlite3 is compiled here) and
# `npm ci` runs the package's `prepare` script, which compiles src/ to dist/ with tsc; then the
# development dependencies (TypeScript, tsx, esbuild, the test tools) are pruned. The runtime
# stage is a slim, non-root image with dist/, the production node_modules, views/ and
# migrations/: it runs the compiled JavaScript with node, nothing is compiled at run time.
# (test/e2e/dockerfile.test.ts checks what can be checked without building the image.)
#
# Node 24 LTS, with 4 MB semi-spaces (an 8 MB new space; NODE_OPTIONS, which node accepts for
# this flag — a NODE_OPTIONS of your own replaces it). Measured 2026-12-07 on the bench's machine
# against the Node 22 this image had: `/token` 1,347-1,429 req/s (Node 22: 1,031-1,299), 688-728
# us of CPU per refresh (761-960); a real `serve` under the bench's `/register` load 1,518-1,567
# req/s in the first 8 s (1,391-1,393) and 181-184 MB of RSS after 16 s (199-201). Node 24 without
# the flag keeps a larger young generation: 285-289 MB. README "Memory", docs/performance.md.

FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json .tsconfig.build.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=4 \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATABASE_PATH=/data/mcp-consent-proxy.db
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY views ./views
COPY migrations ./migrations
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
STOPSIGNAL SIGTERM
CMD ["node", "dist/cli/bin.js", "serve"]
