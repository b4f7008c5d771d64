# syntax=docker/dockerfile:1
# One image recipe, two targets:
#   docker build --target api    -t imagegen-api .
#   docker build --target worker -t imagegen-worker .
# docker-compose.yml builds both.

FROM node:20-bookworm-slim AS base
WORKDIR /app
ENV TURBO_TELEMETRY_DISABLED=1 \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# ---- build: install everything, compile, then drop dev dependencies
FROM base AS build
# Manifests first, so the dependency layer is cached until they change.
COPY package.json package-lock.json turbo.json tsconfig.base.json ./
COPY packages/shared/package.json packages/shared/
COPY apps/api/package.json apps/api/
COPY apps/worker/package.json apps/worker/
COPY test/package.json test/
RUN npm ci
COPY packages ./packages
COPY apps ./apps
RUN npx turbo run build --filter=@imagegen/api --filter=@imagegen/worker \
 && npm prune --omit=dev \
 && rm -rf .turbo node_modules/.cache

# ---- runtime: compiled output and production dependencies, run as the unprivileged `node` user
FROM base AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/data
# A named volume mounted at /data starts with this directory's owner, so `node` can write to it.
RUN mkdir -p /data && chown node:node /data
COPY --from=build /app /app
USER node

FROM runtime AS worker
# Workers drain their active jobs on SIGTERM within SHUTDOWN_TIMEOUT_MS (compose: stop_grace_period).
CMD ["node", "apps/worker/dist/main.js"]

# Last stage: a plain `docker build .` gives the API.
FROM runtime AS api
ENV PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "apps/api/dist/main.js"]
