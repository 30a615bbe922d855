# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, run on a slim Debian
# image as a non-root user. The web stage installs the demo page's npm
# packages, so the server can hand out the socket.io client bundle. The binary
# checks its own health (no curl needed).

FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY web/ ./

FROM rust:1.95-slim-bookworm AS build
# make builds jemalloc (the global allocator).
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace's other member and the patched engineioxide (vendor/README.md).
COPY bench/Cargo.toml ./bench/Cargo.toml
COPY bench/src ./bench/src
COPY vendor ./vendor
RUN cargo build --release --locked --bin switchboard

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin switchboard
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
COPY --from=web /web /srv/switchboard/web
WORKDIR /srv/switchboard
USER switchboard
ENV HOST=0.0.0.0 PORT=4000 LOG_FORMAT=json
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/switchboard", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchboard"]
