//! Cold requests: a request's page reads issued together instead of one fault after another.
//!
//! Finding an id touches up to five places of the file (directory entry, hash run, id ends, id
//! bytes, row), each depending on the one before. With the pages in the page cache that is a
//! few hundred nanoseconds per id; with the pages on disk it is a chain of synchronous faults
//! (about 35 µs each on this project's test machine), so 1,000 ids cost 140-240 ms. Here the
//! same walk is done in four rounds over all of the request's ids: each round asks the kernel
//! for every page the next step needs at once (`MADV_WILLNEED`, which queues the reads without
//! waiting), so a cold request pays about four disk round trips, not four thousand.

use std::time::Instant;

use super::{format, Generation};

/// Granularity of the coalescing; a smaller kernel page only means fewer, longer ranges.
const PAGE: usize = 4096;

/// Page numbers to read, advised as coalesced runs.
#[derive(Default)]
struct Pages(Vec<usize>);

impl Pages {
    fn add(&mut self, offset: u64, len: u64) {
        let (start, end) = (offset as usize, (offset + len.max(1)) as usize);
        self.0.extend(start / PAGE..end.div_ceil(PAGE));
    }

    fn advise(mut self, generation: &Generation) {
        self.0.sort_unstable();
        self.0.dedup();
        let mut runs = self.0.into_iter().peekable();
        while let Some(first) = runs.next() {
            let mut last = first;
            while runs.peek() == Some(&(last + 1)) {
                last += 1;
                runs.next();
            }
            generation
                .map
                .will_need(first * PAGE, (last + 1 - first) * PAGE);
        }
    }
}

impl Generation {
    /// Brings into the page cache the pages that looking up `hashes` will touch, in four rounds
    /// (directory, hash runs, id ends and rows, id bytes). Stops early at `deadline`: what is
    /// not prefetched is read by the lookups as usual.
    pub(super) fn prefetch(&self, hashes: &[u64], deadline: Option<Instant>) {
        let h = &self.header;
        let late = || deadline.is_some_and(|d| Instant::now() >= d);
        let dir_entry = |hash: u64| h.dir + format::bucket(hash, h.dir_bits as u32) as u64 * 4;

        let mut pages = Pages::default();
        for &hash in hashes {
            pages.add(dir_entry(hash), 8);
        }
        pages.advise(self);
        if late() {
            return;
        }

        let mut pages = Pages::default();
        for &hash in hashes {
            if let Some(range) = self.map.u32s(dir_entry(hash) as usize, 2) {
                let (lo, hi) = (u64::from(range[0]), u64::from(range[1]));
                pages.add(h.hashes + lo * 8, hi.saturating_sub(lo) * 8);
            }
        }
        pages.advise(self);
        if late() {
            return;
        }

        let row_bytes = h.row_words() * 8;
        let mut entries = Vec::with_capacity(hashes.len());
        let mut pages = Pages::default();
        for &hash in hashes {
            let Some((lo, run)) = self.hash_run(hash) else {
                continue;
            };
            let start = run.partition_point(|&x| x < hash);
            for (i, _) in run[start..]
                .iter()
                .enumerate()
                .take_while(|(_, &x)| x == hash)
            {
                let e = (lo + start + i) as u64;
                pages.add(h.id_ends + e.saturating_sub(1) * 8, 16);
                pages.add(h.rows + e * row_bytes, row_bytes);
                entries.push(e as usize);
            }
        }
        pages.advise(self);
        if late() {
            return;
        }

        let mut pages = Pages::default();
        for e in entries {
            if let Some((start, end)) = self.id_span(e) {
                pages.add(h.ids + start, end.saturating_sub(start));
            }
        }
        pages.advise(self);
    }
}

#[cfg(test)]
mod tests {
    use crate::DataDir;

    #[test]
    fn prefetching_any_ids_leaves_every_lookup_as_it_was() {
        let tmp = tempfile::tempdir().expect("tmp");
        let lines: String = (0..3000)
            .map(|i| {
                format!(
                    "{{\"id\":\"item-{i}\",\"features\":{{\"a\":{i},\"b\":{}}}}}\n",
                    i * 2
                )
            })
            .collect();
        let snapshot = tmp.path().join("items.jsonl");
        std::fs::write(&snapshot, lines).expect("write");
        let dir = DataDir::open(&tmp.path().join("data")).expect("dir");
        let (g, _) = dir.ensure_snapshot(&snapshot, 1 << 20).expect("build");
        // Known ids (the first and last entries too), unknown ids, a hash no id has.
        let ids: Vec<String> = (0..3000)
            .step_by(7)
            .chain([0, 2999])
            .map(|i| format!("item-{i}"))
            .chain(["nothing".to_string(), String::new()])
            .collect();
        let before: Vec<_> = ids
            .iter()
            .map(|id| g.row(id).map(<[f64]>::to_vec))
            .collect();
        let mut hashes: Vec<u64> = ids.iter().map(|id| super::format::hash(id)).collect();
        hashes.extend([0, u64::MAX]);
        g.prefetch(&hashes, None);
        // A deadline already passed stops after the first round.
        g.prefetch(&hashes, Some(std::time::Instant::now()));
        let after: Vec<_> = ids
            .iter()
            .map(|id| g.row(id).map(<[f64]>::to_vec))
            .collect();
        assert_eq!(before, after);
        assert_eq!(before[0].as_deref(), Some(&[0.0, 0.0][..]));
        assert!(before[before.len() - 1].is_none() && before[before.len() - 2].is_none());
        let (rows, unread) = g.rows(ids.iter().map(String::as_str), None);
        assert_eq!(unread, 0);
        let via_rows: Vec<_> = rows.iter().map(|r| r.map(|(_, v)| v.to_vec())).collect();
        assert_eq!(via_rows, after);
    }
}
