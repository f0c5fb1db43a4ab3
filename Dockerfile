# syntax=docker/dockerfile:1
# Build: docker build -t daygle .   Run: see docker-compose.yml.

FROM rust:1.95-trixie AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
# Every [[bench]] Cargo.toml names needs a file for the manifest to load: placeholders, read
# from Cargo.toml itself so a new benchmark cannot break this step. The download must succeed
# (a network problem is reported here, not cached as a layer); the build of the placeholder
# crate may fail, only its dependencies matter.
RUN mkdir src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for b in $(awk '/^\[\[bench\]\]/ { b = 1; next } b && /^name *=/ { gsub(/^name *= *"|".*$/, ""); print; b = 0 }' Cargo.toml); do \
         echo 'fn main() {}' > "benches/$b.rs"; done \
    && cargo fetch --locked \
    && (cargo build --release --locked --bin daygle || true)
COPY src src
# Compile-time checked SQL builds from the committed query data, without a database.
COPY .sqlx .sqlx
ENV SQLX_OFFLINE=true
COPY migrations migrations
COPY templates templates
COPY static static
COPY benches benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin daygle \
    && strip target/release/daygle

# Trixie's postgresql-client is PostgreSQL 17, the server docker-compose.yml runs: pg_dump and
# pg_restore (used by `daygle backup` / `daygle restore`) must be at least the server's version.
FROM debian:trixie-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/daygle --create-home daygle
COPY --from=build /src/target/release/daygle /usr/local/bin/daygle
COPY daygle_mail_archiver.conf.example /etc/daygle/daygle_mail_archiver.conf.example
USER daygle
WORKDIR /var/lib/daygle
ENV DAYGLE__SERVER__BIND=0.0.0.0:8080 \
    DAYGLE__STORAGE__DATA_DIR=/var/lib/daygle \
    DAYGLE__LOGGING__FORMAT=json
EXPOSE 8080
VOLUME ["/var/lib/daygle"]
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["daygle", "healthcheck"]
ENTRYPOINT ["daygle"]
CMD ["serve"]
