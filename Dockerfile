# Corridor's container image: a release build in the Rust image, then only the binary on a
# slim Debian runtime, as an unprivileged user. Not built on the machine this repository is
# developed on (it has no container engine); CI lints it with hadolint.
#
#   docker build -t corridor .
#   docker run -p 8080:8080 corridor            # embedded SQLite in /var/lib/corridor
#   docker compose up                           # PostgreSQL + an API node + a worker node

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so a change to Corridor's own code reuses their layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
COPY examples ./examples
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin corridor \
    && strip target/release/corridor

FROM debian:bookworm-slim AS runtime
# curl for the health check; CA certificates for HTTPS to providers and webhook receivers.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/corridor --create-home corridor
COPY --from=build /src/target/release/corridor /usr/local/bin/corridor
USER 10001:10001
WORKDIR /var/lib/corridor
ENV CORRIDOR_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/corridor/corridor.db \
    CORRIDOR_LOG_FORMAT=json
VOLUME ["/var/lib/corridor"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["corridor"]
CMD ["serve"]
