# Herald server image: one build, every component (HERALD_COMPONENTS selects which run).
FROM node:20-bookworm AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production HERALD_DATA_DIR=/var/lib/herald
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
VOLUME /var/lib/herald
EXPOSE 55000 27000
CMD ["node", "dist/apps/herald/src/main.js"]
