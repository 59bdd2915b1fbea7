# syntax=docker/dockerfile:1
#
# One image, one static multi-call binary (cmd/redis-keda) reachable as
# /publisher and /jobs (links): the manifests pick one with `command:`. One
# binary instead of two halves the image: both programs share the Go runtime,
# go-redis, zap and crypto/tls (~11 MB uncompressed with the base).
#
#   task image       (docker buildx build --load, tag from git describe; see k8s/README.md)
#   docker buildx build --load --build-arg VERSION=$(git describe --tags --always --dirty) -t redis-keda:dev .
#
# Needs BuildKit (RUN --mount caches, --platform=$BUILDPLATFORM): the legacy
# `docker build` without the buildx plugin cannot run it.
#
# Keep the Go version in step with the `go` line of go.mod.
ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first: this layer is reused until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# The same flags as `task build` and k8s/image_test.go's build check:
# static (no cgo), reproducible paths, stripped, version stamped into main.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/redis-keda ./cmd/redis-keda && \
    ln -s redis-keda /out/jobs && \
    ln -s redis-keda /out/publisher

# distroless static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="redis-keda" \
      org.opencontainers.image.description="Redis list publisher and one-event-per-Job consumer for KEDA ScaledJob" \
      org.opencontainers.image.source="https://github.com/redis-keda/redis-keda" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# /redis-keda plus the links /jobs and /publisher (COPY keeps symlinks).
COPY --from=build /out/ /
USER 65532:65532
# No default command on purpose: run /publisher or /jobs.
ENTRYPOINT []
