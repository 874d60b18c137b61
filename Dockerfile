# syntax=docker/dockerfile:1
# Berth container image: build with the full toolchain, run on a slim Node 24 LTS as a non-root user.
#   docker build -t berth .
#   docker run -p 5000:5000 -v berth-data:/data berth

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY server ./server
COPY storage-drivers ./storage-drivers
COPY auth ./auth
COPY errors ./errors
COPY recipes ./recipes
# tsc exits non-zero on any type error, so a broken tree never becomes an image.
RUN npx tsc -p tsconfig.json \
 && rm -rf dist/test dist/bench \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    BERTH_DATA_DIR=/data
RUN groupadd --system --gid 10001 berth \
 && useradd --system --uid 10001 --gid berth --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin berth \
 && mkdir -p /data \
 && chown berth:berth /data
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY bin ./bin
USER berth:berth
VOLUME ["/data"]
EXPOSE 5000
# Plain HTTP on the container's own port; with TLS on, point HEALTHCHECK_URL at https://… (and a
# certificate the container trusts) or override this check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.HEALTHCHECK_URL || 'http://127.0.0.1:' + (process.env.BERTH_HTTP_PORT || process.env.PORT || 5000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM reaches Node directly (exec form), which drains in-flight requests before exiting.
ENTRYPOINT ["node", "bin/berth.js"]
CMD ["serve"]
