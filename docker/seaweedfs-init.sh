#!/bin/sh
# One-shot bucket set-up for docker/compose.yaml (service seaweedfs-init), run with the
# SeaweedFS image's busybox sh. Safe to run again: a bucket that exists is left alone.
#
#   S3_BUCKETS     plain S3 buckets (landing, quarantine, observability)
#   TABLE_BUCKETS  S3 *table* buckets (source, serve): SeaweedFS's Iceberg REST catalog treats
#                  each table bucket as one warehouse and writes only inside namespace folders
#   WEED_MASTER    master address for `weed shell` (gRPC is its port + 10000)
#   TABLE_ACCOUNT  owner account of the table buckets
#
# `weed shell` exits 0 even when a command inside it failed, so every bucket is checked after
# it is created, and the script retries until all exist (or gives up with exit 1, which keeps
# the tmctl services from starting).
set -eu

MASTER="${WEED_MASTER:-seaweedfs:9333}"
ACCOUNT="${TABLE_ACCOUNT:-admin}"
S3_BUCKETS="${S3_BUCKETS:-tm-lakehouse-landing tm-lakehouse-quarantine tm-lakehouse-observability}"
TABLE_BUCKETS="${TABLE_BUCKETS:-tm-lakehouse-source tm-lakehouse-serve}"
TRIES="${TRIES:-60}"

weed_shell() {
  printf '%s\n' "$1" | weed shell -master="$MASTER" 2>&1 || true
}

s3_bucket_exists() {
  weed_shell "s3.bucket.list" | grep -Eq "(^|[[:space:]])$1([[:space:]]|\$)"
}

table_bucket_exists() {
  weed_shell "s3tables.bucket -get -name $1 -account $ACCOUNT" | grep -q "ARN:"
}

# ensure KIND NAME: prints what it did; returns 1 if the bucket still does not exist.
ensure() {
  kind="$1"
  name="$2"
  if "${kind}_bucket_exists" "$name"; then
    echo "seaweedfs-init: $kind bucket $name exists"
    return 0
  fi
  if [ "$kind" = s3 ]; then
    out="$(weed_shell "s3.bucket.create -name $name")"
  else
    out="$(weed_shell "s3tables.bucket -create -name $name -account $ACCOUNT")"
  fi
  if "${kind}_bucket_exists" "$name"; then
    echo "seaweedfs-init: $kind bucket $name created"
    return 0
  fi
  case "$out" in
    *"already exists"*) echo "seaweedfs-init: $kind bucket $name already exists" ; return 0 ;;
  esac
  echo "seaweedfs-init: $kind bucket $name not there yet: $out" | tr '\n' ' '
  echo
  return 1
}

i=1
while :; do
  ok=1
  for b in $S3_BUCKETS; do
    ensure s3 "$b" || ok=0
  done
  for b in $TABLE_BUCKETS; do
    ensure table "$b" || ok=0
  done
  if [ "$ok" = 1 ]; then
    echo "seaweedfs-init: all buckets ready"
    exit 0
  fi
  if [ "$i" -ge "$TRIES" ]; then
    echo "seaweedfs-init: giving up after $TRIES tries" >&2
    exit 1
  fi
  i=$((i + 1))
  sleep 2
done
