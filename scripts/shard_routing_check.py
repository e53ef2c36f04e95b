"""Checks `items import --index-shards N/R --keep-shards ...` against a real search node
(scripts/test-shard-routing.sh starts it): indexes documents whose _ids are item ids (non-ASCII
ones and some with a custom _routing) into indices of several shard layouts, reads each index's
routing_num_shards from the cluster state, lists the ids the engine put on each shard
(`preference=_shards:N`), and asserts that a shard-filtered import of the same catalogue holds
exactly those ids, shard by shard (so the importer's shard of every id is the engine's), from
JSON Lines and from Parquet, and that the generation records the filter.

usage: shard_routing_check.py URL FLAVOR SIDECAR_BINARY WORKDIR
Needs pyarrow for the Parquet snapshot (the pipelines' venv has it).
"""

import json
import os
import struct
import subprocess
import sys
import urllib.error
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq

DOCS = 2000
# Shard layouts: (index, number_of_shards, number_of_routing_shards or None for the default).
INDICES = [("routing-6", 6, None), ("routing-3r24", 3, 24), ("routing-5", 5, None)]


def http(method, url, body=None, ndjson=False):
    data = None
    headers = {}
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers["Content-Type"] = "application/x-ndjson" if ndjson else "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {url}: {e.code} {e.read()[:500]!r}")


def catalogue():
    """(id, routing or None, n): ids of several scripts, one with a character outside the BMP
    (a UTF-16 surrogate pair); every 9th document routed by a seller key."""
    docs = []
    for i in range(DOCS):
        kind = i % 6
        doc_id = [f"item-{i}", f"ü-{i}", f"日本-{i}", f"😀{i}", f"Ωmega {i}", f"x/{i}"][kind]
        routing = None
        if i % 27 == 0:
            routing = f"店舗-{i % 5}"
        elif i % 9 == 0:
            routing = f"seller-{i % 17}"
        docs.append((doc_id, routing, i))
    return docs


def write_snapshots(docs, work):
    jsonl = os.path.join(work, "items.jsonl")
    with open(jsonl, "w", encoding="utf-8") as f:
        for doc_id, routing, n in docs:
            line = {"id": doc_id, "version": 1, "features": {"n": n}}
            if routing is not None:
                line["routing"] = routing
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    parquet = os.path.join(work, "items.parquet")
    table = pa.table({
        "id": pa.array([d[0] for d in docs], pa.string()),
        "routing": pa.array([d[1] for d in docs], pa.string()),
        "n": pa.array([float(d[2]) for d in docs], pa.float64()),
    })
    pq.write_table(table, parquet)
    return jsonl, parquet


def create_and_index(url, index, shards, routing_shards, docs):
    req = urllib.request.Request(f"{url}/{index}", method="DELETE")
    try:
        urllib.request.urlopen(req, timeout=30).read()
    except urllib.error.HTTPError:
        pass
    settings = {"number_of_shards": shards, "number_of_replicas": 0}
    if routing_shards is not None:
        settings["number_of_routing_shards"] = routing_shards
    http("PUT", f"{url}/{index}", {"settings": {"index": settings},
                                    "mappings": {"properties": {"n": {"type": "integer"}}}})
    lines = []
    for doc_id, routing, n in docs:
        action = {"_index": index, "_id": doc_id}
        if routing is not None:
            action["routing"] = routing
        lines.append(json.dumps({"index": action}, ensure_ascii=False))
        lines.append(json.dumps({"n": n}))
    r = http("POST", f"{url}/_bulk?refresh=true", "\n".join(lines) + "\n", ndjson=True)
    if r.get("errors"):
        bad = [i for i in r["items"] if i["index"].get("error")][:3]
        raise SystemExit(f"bulk into {index} failed: {bad}")


def index_layout(url, flavor, index):
    """(number_of_shards, routing_num_shards as reported, the routing shards that place
    documents, index version created) from the cluster state, by the rule of
    docs/feature-store.md: Elasticsearch indices created from index version 9064000 on route by
    hash mod number_of_shards; OpenSearch and older ones by routing_num_shards. Refuses layouts
    the importer cannot reproduce."""
    meta = http("GET", f"{url}/_cluster/state/metadata/{index}")["metadata"]["indices"][index]
    settings = meta["settings"]["index"]
    if int(settings.get("routing_partition_size", "1")) > 1 or settings.get("routing_path"):
        raise SystemExit(f"{index}: routing_partition_size > 1 or routing_path: not reproducible")
    n, r = int(settings["number_of_shards"]), int(meta["routing_num_shards"])
    created = int(settings["version"]["created"])
    modulo = flavor.startswith("elasticsearch") and created >= 9064000
    return n, r, (n if modulo else r), created


def engine_shards(url, index, shards):
    """The ids the engine holds on each shard."""
    placement = []
    for s in range(shards):
        r = http("POST", f"{url}/{index}/_search?preference=_shards:{s}",
                 {"size": 10000, "_source": False, "query": {"match_all": {}}, "sort": ["_doc"]})
        placement.append({h["_id"] for h in r["hits"]["hits"]})
    total = sum(len(p) for p in placement)
    if total != DOCS:
        raise SystemExit(f"{index}: the engine lists {total} documents over its shards, {DOCS} indexed")
    return placement


def generation(path):
    """The ids and meta of a generation file (format rescore-items-2, docs/adr/0008)."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:8] != b"RSITEMS2":
        raise SystemExit(f"{path}: not a rescore-items-2 file")
    entries, _cols, _bits, meta, meta_len, _dir, _hashes, _rows, id_ends, ids, _len = \
        struct.unpack_from("<11Q", b, 8)
    ends = struct.unpack_from(f"<{entries}Q", b, id_ends)
    out, start = set(), 0
    for end in ends:
        out.add(b[ids + start: ids + end].decode("utf-8"))
        start = end
    return out, json.loads(b[meta: meta + meta_len])


def import_shards(binary, snapshot, data_dir, n, r, keep):
    args = [binary, "items", "import", snapshot, "--index-shards", f"{n}/{r}",
            "--keep-shards", ",".join(str(s) for s in keep), "--data-dir", data_dir]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    ids, meta = generation(summary["path"])
    return summary, ids, meta


def main():
    url, flavor, binary, work = sys.argv[1:5]
    docs = catalogue()
    jsonl, parquet = write_snapshots(docs, work)
    data_dir = os.path.join(work, f"data-{flavor}")
    failures = []
    for index, shards, routing_shards in INDICES:
        create_and_index(url, index, shards, routing_shards, docs)
        n, reported, r, created = index_layout(url, flavor, index)
        placement = engine_shards(url, index, n)
        default = " (the engine's default)" if routing_shards is None else ""
        print(f"{flavor} {index}: number_of_shards={n} routing_num_shards={reported}{default} "
              f"version.created={created}: --index-shards {n}/{r}; "
              f"documents per shard {[len(p) for p in placement]}")
        # Every shard on its own (JSON Lines): the importer's shard of every id is the engine's.
        for s in range(n):
            summary, ids, meta = import_shards(binary, jsonl, data_dir, n, r, [s])
            expected = placement[s]
            want_meta = {"number_of_shards": n, "routing_num_shards": r, "kept_shards": [s]}
            if ids != expected:
                failures.append(f"{index} shard {s}: {len(expected - ids)} ids of the engine's "
                                f"shard missing (e.g. {sorted(expected - ids)[:3]}), "
                                f"{len(ids - expected)} foreign (e.g. {sorted(ids - expected)[:3]})")
            if (summary["items"], summary["skipped"]) != (len(expected), DOCS - len(expected)):
                failures.append(f"{index} shard {s}: summary {summary}")
            if meta.get("shards") != want_meta or summary.get("shards") != want_meta:
                failures.append(f"{index} shard {s}: recorded {meta.get('shards')}, want {want_meta}")
        # Several shards at once, from Parquet.
        keep = sorted({0, n - 1})
        _, ids, _ = import_shards(binary, parquet, data_dir, n, r, keep)
        expected = set().union(*(placement[s] for s in keep))
        if ids != expected:
            failures.append(f"{index} shards {keep} from Parquet: {len(expected ^ ids)} ids differ")
        # The other routing function would have placed items elsewhere: the rule matters, and
        # the check can fail.
        other = n if r != n else reported
        if other != r:
            wrong = [import_shards(binary, jsonl, data_dir, n, other, [s])[1] for s in range(n)]
            if wrong == placement:
                failures.append(f"{index}: {n}/{r} and {n}/{other} place alike (check is blind)")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        raise SystemExit(f"{flavor}: {len(failures)} shard-routing mismatches")
    print(f"{flavor}: every id's shard equals the engine's on {len(INDICES)} indices "
          f"({DOCS} documents each, {sum(1 for d in docs if d[1])} with a custom routing)")


if __name__ == "__main__":
    main()
