//! The shard an Elasticsearch or OpenSearch index puts a document on, recomputed exactly as the
//! engine does it (docs/adr/0009-items-beyond-one-nodes-disk.md, decision 2), so that an import
//! can keep only the items of the shards a node holds ([`ShardFilter`]).
//!
//! The engine hashes the routing key (the `_routing` value, or the `_id` when there is none)
//! with murmur3 x86 32-bit, seed 0, over the key's UTF-16 code units as little-endian bytes
//! (`Murmur3HashFunction.hash(String)`), then takes
//! `floorMod(hash, routing_num_shards) / (routing_num_shards / number_of_shards)`
//! (the legacy routing function). `routing_num_shards` is not the shard count: an index created
//! without `index.number_of_routing_shards` gets a power-of-two multiple of it (768 for 6
//! shards), read from `GET _cluster/state/metadata/<index>`.
//!
//! Elasticsearch indices created from index version 9064000 on (`settings.index.version.created`
//! in the cluster state; Elasticsearch 9.x) route by `floorMod(hash, number_of_shards)`
//! instead (the engine's `RoutingFunction.moduloNumberOfShards`; `routing_num_shards` is still
//! reported but no longer places documents): the same formula with `routing_num_shards` equal
//! to `number_of_shards`, which is what `N` alone means to [`IndexShards::parse`]. OpenSearch
//! and older Elasticsearch indices use the legacy function. scripts/test-shard-routing.sh
//! checks both against real nodes.

use std::io::Read;

use serde::{Deserialize, Serialize};

/// The engine's routing hash of `key`: murmur3 x86 32-bit, seed 0, of its UTF-16 code units in
/// little-endian byte order, as a signed 32-bit value (Java's `int`).
pub fn routing_hash(key: &str) -> i32 {
    let mut bytes = Utf16LeBytes {
        units: key.encode_utf16(),
        pending: None,
    };
    // The reader only walks the string in memory: it cannot fail.
    let hash = murmur3::murmur3_32(&mut bytes, 0).expect("reading a string in memory");
    hash as i32
}

/// A string's UTF-16 code units as little-endian bytes, streamed (no allocation per key).
struct Utf16LeBytes<I> {
    units: I,
    /// The high byte of a code unit whose low byte was the last one handed out.
    pending: Option<u8>,
}

impl<I: Iterator<Item = u16>> Read for Utf16LeBytes<I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if let Some(high) = self.pending.take() {
                buf[n] = high;
                n += 1;
                continue;
            }
            let Some(unit) = self.units.next() else { break };
            let [low, high] = unit.to_le_bytes();
            buf[n] = low;
            self.pending = Some(high);
            n += 1;
        }
        Ok(n)
    }
}

/// An index's shard layout: `number_of_shards` and `routing_num_shards` (its metadata's
/// `index.number_of_shards` and `routing_num_shards`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexShards {
    pub number_of_shards: u32,
    pub routing_num_shards: u32,
}

impl IndexShards {
    /// Checks the layout: at least one shard, `routing_num_shards` a multiple of it, both
    /// within Java's `int` (the engine's type for them).
    pub fn new(number_of_shards: u32, routing_num_shards: u32) -> Result<Self, String> {
        if number_of_shards == 0 {
            return Err("number_of_shards must be at least 1".into());
        }
        if routing_num_shards > i32::MAX as u32 {
            return Err(format!(
                "routing_num_shards {routing_num_shards} is above the engine's limit {}",
                i32::MAX
            ));
        }
        if routing_num_shards < number_of_shards
            || !routing_num_shards.is_multiple_of(number_of_shards)
        {
            return Err(format!(
                "routing_num_shards {routing_num_shards} is not a multiple of number_of_shards \
                 {number_of_shards} (an index's routing_num_shards always is: read both from \
                 GET _cluster/state/metadata/<index>)"
            ));
        }
        Ok(IndexShards {
            number_of_shards,
            routing_num_shards,
        })
    }

    /// Parses `N/R` (number_of_shards / routing_num_shards, the legacy routing function),
    /// e.g. `6/768`, or `N` alone (routing by `hash mod N`: Elasticsearch indices created from
    /// index version 9064000 on).
    pub fn parse(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "`{text}`: expected NUMBER_OF_SHARDS/ROUTING_NUM_SHARDS, e.g. 6/768, or \
                 NUMBER_OF_SHARDS alone for an Elasticsearch index created from index version \
                 9064000 on (all from GET _cluster/state/metadata/<index>: \
                 settings.index.number_of_shards, routing_num_shards, settings.index.version.created)"
            )
        };
        let (n, r) = match text.trim().split_once('/') {
            Some((n, r)) => (n, r),
            None => (text.trim(), text.trim()),
        };
        let n: u32 = n.trim().parse().map_err(|_| usage())?;
        let r: u32 = r.trim().parse().map_err(|_| usage())?;
        IndexShards::new(n, r)
    }

    /// The shard the engine routes a document with this routing key to (its `_routing`, or
    /// its `_id` when it has none).
    pub fn shard_of(&self, routing_key: &str) -> u32 {
        let routing_factor = self.routing_num_shards / self.number_of_shards;
        // `rem_euclid` is Java's `Math.floorMod` for a positive divisor: never negative.
        let slot = routing_hash(routing_key).rem_euclid(self.routing_num_shards as i32);
        slot as u32 / routing_factor
    }
}

/// Which items an import keeps: those the index routes to one of `kept_shards`. Recorded in the
/// generation's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFilter {
    #[serde(flatten)]
    pub index: IndexShards,
    /// Ascending, without duplicates.
    pub kept_shards: Vec<u32>,
}

impl ShardFilter {
    /// Checks that every kept shard exists in the index; sorts and deduplicates them.
    pub fn new(index: IndexShards, mut kept_shards: Vec<u32>) -> Result<Self, String> {
        if kept_shards.is_empty() {
            return Err("no shard to keep: name at least one shard id".into());
        }
        if let Some(bad) = kept_shards.iter().find(|&&s| s >= index.number_of_shards) {
            return Err(format!(
                "shard {bad} does not exist in an index of {} shards (ids 0..={})",
                index.number_of_shards,
                index.number_of_shards - 1
            ));
        }
        kept_shards.sort_unstable();
        kept_shards.dedup();
        Ok(ShardFilter { index, kept_shards })
    }

    /// Parses a comma-separated list of shard ids, e.g. `3,17,42`.
    pub fn parse(index: IndexShards, kept: &str) -> Result<Self, String> {
        let shards = kept
            .split(',')
            .map(|s| {
                s.trim().parse::<u32>().map_err(|_| {
                    format!("`{kept}`: expected shard ids separated by commas, e.g. 3,17,42")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        ShardFilter::new(index, shards)
    }

    /// Whether an item whose routing key is `routing_key` is on a kept shard.
    pub fn keeps(&self, routing_key: &str) -> bool {
        self.kept_shards
            .binary_search(&self.index.shard_of(routing_key))
            .is_ok()
    }
}

impl std::fmt::Display for ShardFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept: Vec<String> = self.kept_shards.iter().map(u32::to_string).collect();
        write!(
            f,
            "shards {} of {}/{}",
            kept.join(","),
            self.index.number_of_shards,
            self.index.routing_num_shards
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_engines_known_answers() {
        // Murmur3HashFunction's own test vectors in Elasticsearch (as Java ints).
        for (key, hash) in [
            ("hell", 0x5a0c_b7c3_u32),
            ("hello", 0xd7c3_1989),
            ("hello w", 0x22ab_2984),
            ("hello wo", 0xdf0c_a123),
            ("hello wor", 0xe774_4d61),
            ("The quick brown fox jumps over the lazy dog", 0xe07d_b09c),
            ("The quick brown fox jumps over the lazy cog", 0x4e63_d2ad),
        ] {
            assert_eq!(routing_hash(key), hash as i32, "{key}");
        }
        // The empty input of murmur3 x86 32-bit with seed 0 hashes to 0.
        assert_eq!(routing_hash(""), 0);
    }

    #[test]
    fn keys_are_hashed_as_utf16_little_endian() {
        // A non-BMP character is two code units (a surrogate pair), not its four UTF-8 bytes.
        for key in ["😀x", "ü-123", "日本-7", "a"] {
            let bytes: Vec<u8> = key.encode_utf16().flat_map(u16::to_le_bytes).collect();
            let expected = murmur3::murmur3_32(&mut bytes.as_slice(), 0).expect("in memory");
            assert_eq!(routing_hash(key), expected as i32, "{key}");
            let utf8 = murmur3::murmur3_32(&mut key.as_bytes(), 0).expect("in memory");
            assert_ne!(routing_hash(key), utf8 as i32, "{key}");
        }
    }

    #[test]
    fn shards_use_floor_mod_and_the_routing_factor() {
        let index = IndexShards::new(6, 768).expect("valid");
        // "hello" hashes negative: floorMod, not a remainder that keeps the sign, and not
        // the unsigned value modulo 768 (768 is not a power of two).
        let hash = routing_hash("hello");
        assert!(hash < 0);
        let expected = (i64::from(hash).rem_euclid(768) / 128) as u32;
        assert_eq!(index.shard_of("hello"), expected);
        assert_ne!(
            (hash as u32 % 768) / 128,
            expected,
            "this key tells the two apart"
        );
        // routing_num_shards = number_of_shards: the plain floorMod.
        let plain = IndexShards::new(5, 5).expect("valid");
        assert_eq!(plain.shard_of("hello"), hash.rem_euclid(5) as u32);
        // every shard id is in range
        for i in 0..10_000 {
            assert!(index.shard_of(&format!("item{i}")) < 6);
        }
    }

    #[test]
    fn placements_match_a_real_node() {
        // `GET <index>/_search_shards?routing=<key>` on Elasticsearch 9.5.4, an index of 6
        // shards created by it (index version 9111000: routed by hash mod 6).
        let index = IndexShards::parse("6").expect("valid");
        for (key, shard) in [("hello", 1), ("item-102", 3), ("item-0", 3), ("a", 2)] {
            assert_eq!(index.shard_of(key), shard, "{key}");
        }
    }

    #[test]
    fn layouts_and_shard_lists_are_checked() {
        assert_eq!(
            IndexShards::parse(" 6/768 "),
            Ok(IndexShards {
                number_of_shards: 6,
                routing_num_shards: 768
            })
        );
        assert_eq!(
            IndexShards::parse("6"),
            Ok(IndexShards {
                number_of_shards: 6,
                routing_num_shards: 6
            })
        );
        for bad in ["6/", "x/768", "6/768/2", "-1/4", "", "x"] {
            let e = IndexShards::parse(bad).expect_err(bad);
            assert!(
                e.contains("NUMBER_OF_SHARDS/ROUTING_NUM_SHARDS"),
                "{bad}: {e}"
            );
        }
        assert!(IndexShards::parse("6/100")
            .expect_err("not a multiple")
            .contains("not a multiple of number_of_shards 6"));
        assert!(IndexShards::parse("6/3").is_err());
        assert!(IndexShards::parse("0/0")
            .expect_err("zero")
            .contains("at least 1"));
        let index = IndexShards::new(6, 768).expect("valid");
        let filter = ShardFilter::parse(index, "4, 1,4").expect("valid");
        assert_eq!(filter.kept_shards, vec![1, 4]);
        assert_eq!(filter.to_string(), "shards 1,4 of 6/768");
        assert!(ShardFilter::parse(index, "1,6")
            .expect_err("out of range")
            .contains("shard 6 does not exist in an index of 6 shards (ids 0..=5)"));
        assert!(ShardFilter::parse(index, "1,,2").is_err());
        assert!(ShardFilter::parse(index, "a").is_err());
        assert!(ShardFilter::new(index, vec![])
            .expect_err("empty")
            .contains("no shard"));
    }

    #[test]
    fn a_filter_keeps_exactly_its_shards_and_round_trips_as_json() {
        let index = IndexShards::new(3, 24).expect("valid");
        let filter = ShardFilter::new(index, vec![2, 0]).expect("valid");
        for i in 0..3_000 {
            let id = format!("id-{i}");
            assert_eq!(filter.keeps(&id), index.shard_of(&id) != 1, "{id}");
        }
        let json = serde_json::to_string(&filter).expect("json");
        assert_eq!(
            json,
            r#"{"number_of_shards":3,"routing_num_shards":24,"kept_shards":[0,2]}"#
        );
        assert_eq!(
            serde_json::from_str::<ShardFilter>(&json).expect("parse"),
            filter
        );
    }
}
