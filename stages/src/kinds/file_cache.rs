//! `file_cache`: file responses kept in memory by request path, bounded in bytes, least recently
//! used evicted first. `{"capacity_bytes": 67108864}`; outputs `hit` and `miss`.
//!
//! Haboob's shape: `route → cache`, `hit → send`, `miss → read` (a `static_file` stage) and
//! `read → cache` again. The cache tells its visits apart by `req.file`, which `static_file`
//! leaves set on its way out:
//! 1. `req.file` is set: the request comes back from a read. The cache takes `req.file` and, for
//!    a `200`, stores the body (as one shared `Arc<[u8]>`), the response headers and the file's
//!    modification time under the path, then sets the response to share that body. Any other
//!    status (`404`, `304`, ...) is not stored. Either way on to `hit`: the response is built.
//! 2. Otherwise a GET or HEAD whose path is stored: `200` with the entry's headers and its body
//!    shared, not copied; or `304` with no body when `If-Modified-Since` allows it. On to `hit`.
//! 3. Otherwise on to `miss`.
//!
//! All instances of a stage share one cache through the factory. The lock is held only for a
//! map lookup and a list splice; evicted bodies are dropped after it is released. An entry
//! costs its body's length plus its key's; one larger than the capacity is never stored, and
//! neither is a body that was not read (a large file streamed from the file, or a HEAD's).
//!
//! A hit is revalidated: the file the entry was read from is `stat`ed (outside the lock) and
//! the entry is used only if its modification time and length are still the ones read; else
//! the entry is dropped and the request is a miss, so a changed file is read afresh. A hit's
//! answer is cut to the request's `Range` ([`crate::range`]), like a read's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{
    http, range, BuildError, FileMeta, FileRead, Headers, Output, Outputs, Request, Stage, StageFactory, Step,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "sixty_four_mib")]
    capacity_bytes: u64,
}

fn sixty_four_mib() -> u64 {
    64 << 20
}

const HIT: Output = Output(0);
const MISS: Output = Output(1);

/// The factory and every instance: handles on one shared cache.
#[derive(Clone)]
pub struct FileCache {
    shared: Arc<Shared>,
}

struct Shared {
    lru: Mutex<Lru>,
    /// The cache's size in bytes, also outside the lock.
    capacity: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
    /// Entries found changed on disk when hit, and dropped.
    stale: AtomicU64,
}

/// A snapshot of a cache's counters and contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
    /// Entries found changed on disk when hit, and dropped.
    pub stale: u64,
    /// What the entries cost now (bodies and keys).
    pub bytes: u64,
    pub entries: usize,
}

/// One cached response.
struct Entry {
    body: Arc<[u8]>,
    headers: Headers,
    modified: SystemTime,
    /// The file it was read from, when known, to check on a hit that it has not changed.
    path: Option<Arc<Path>>,
}

impl FileCache {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        if params.capacity_bytes == 0 {
            return Err(BuildError::bad("capacity_bytes", "`capacity_bytes` must be at least 1"));
        }
        let shared = Shared {
            lru: Mutex::new(Lru::new(params.capacity_bytes)),
            capacity: params.capacity_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        };
        Ok(FileCache { shared: Arc::new(shared) })
    }

    pub fn stats(&self) -> CacheStats {
        let s = &self.shared;
        let (bytes, entries) = {
            let lru = s.lock();
            (lru.bytes, lru.map.len())
        };
        CacheStats {
            hits: s.hits.load(Relaxed),
            misses: s.misses.load(Relaxed),
            inserts: s.inserts.load(Relaxed),
            evictions: s.evictions.load(Relaxed),
            stale: s.stale.load(Relaxed),
            bytes,
            entries,
        }
    }

    /// Stores the `200` response a read just produced and makes it share the stored body.
    fn store(&self, req: &mut Request, meta: FileMeta) {
        if req.response.file.is_some() || req.response.body.len() as u64 != meta.len {
            // Not read into memory (streamed, or a HEAD's): nothing to keep.
            return;
        }
        let key = req.http.path();
        let cost = (req.response.body.len() + key.len()) as u64;
        if cost > self.shared.capacity {
            return;
        }
        // Copying the body into its Arc is the one copy a cached file ever costs; it is made
        // before the lock is taken, and what the insert removes is freed after it is released.
        let body: Arc<[u8]> = req.response.body.as_slice().into();
        let (modified, path) = (meta.modified, meta.path);
        let entry = Arc::new(Entry { body: body.clone(), headers: req.response.headers.clone(), modified, path });
        let (replaced, evicted) = self.shared.lock().insert(key.into(), cost, entry);
        self.shared.inserts.fetch_add(1, Relaxed);
        self.shared.evictions.fetch_add(evicted.len() as u64, Relaxed);
        req.response.shared = Some(body);
        drop((replaced, evicted));
    }

    /// Answers from the entry stored under the path, if any.
    fn lookup(&self, req: &mut Request) -> bool {
        let found = self.shared.lock().get(req.http.path());
        let Some(entry) = found else { return false };
        if !entry.unchanged() {
            self.shared.stale.fetch_add(1, Relaxed);
            let removed = self.shared.lock().remove_if(req.http.path(), &entry);
            drop((removed, entry));
            return false;
        }
        let response = &mut req.response;
        if http::not_modified(&req.http, entry.modified) {
            response.status = 304;
            response.body.clear();
            if let Some(date) = entry.headers.get("Last-Modified") {
                response.headers.set("Last-Modified", date);
            }
        } else {
            response.status = 200;
            for (name, value) in entry.headers.iter() {
                response.headers.set(name, value);
            }
            response.shared = Some(entry.body.clone());
            range::apply(req);
        }
        true
    }
}

impl Entry {
    /// Whether the file it was read from still has the time and length it was read with.
    fn unchanged(&self) -> bool {
        let Some(path) = &self.path else { return true };
        std::fs::metadata(path)
            .is_ok_and(|now| now.len() == self.body.len() as u64 && now.modified().is_ok_and(|m| m == self.modified))
    }
}

impl Shared {
    /// A panic elsewhere while the lock was held cannot leave the map half-changed (nothing
    /// under the lock panics), so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StageFactory for FileCache {
    fn outputs(&self) -> Outputs {
        Outputs::Named(vec!["hit".into(), "miss".into()])
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(self.clone())
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats();
        vec![
            ("hits", s.hits),
            ("misses", s.misses),
            ("inserts", s.inserts),
            ("evictions", s.evictions),
            ("stale", s.stale),
            ("bytes", s.bytes),
            ("entries", s.entries as u64),
        ]
    }
}

impl Stage for FileCache {
    fn handle(&mut self, req: &mut Request) -> Step {
        if let Some(FileRead { result }) = req.file.take() {
            if let (Ok(meta), 200) = (result, req.response.status) {
                self.store(req, meta);
            }
            return Step::Next(HIT);
        }
        if matches!(req.http.method(), "GET" | "HEAD") && self.lookup(req) {
            self.shared.hits.fetch_add(1, Relaxed);
            Step::Next(HIT)
        } else {
            self.shared.misses.fetch_add(1, Relaxed);
            Step::Next(MISS)
        }
    }
}

/// The entries, by key and in recency order: a doubly linked list threaded through a slab of
/// slots, so a hit is a lookup and a splice, with no allocation.
struct Lru {
    map: HashMap<Arc<str>, usize>,
    slots: Vec<Slot>,
    /// Slots whose entry was removed, for reuse.
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used: evicted first.
    tail: usize,
    bytes: u64,
    capacity: u64,
}

const NIL: usize = usize::MAX;

struct Slot {
    /// `None` in a free slot.
    item: Option<(Arc<str>, Arc<Entry>)>,
    cost: u64,
    prev: usize,
    next: usize,
}

impl Lru {
    fn new(capacity: u64) -> Self {
        Lru { map: HashMap::new(), slots: Vec::new(), free: Vec::new(), head: NIL, tail: NIL, bytes: 0, capacity }
    }

    /// The entry under `key`, now the most recently used.
    fn get(&mut self, key: &str) -> Option<Arc<Entry>> {
        let slot = *self.map.get(key)?;
        self.unlink(slot);
        self.push_front(slot);
        self.slots[slot].item.as_ref().map(|(_, entry)| entry.clone())
    }

    /// Stores `entry` (of `cost` bytes, at most the capacity) as the most recently used,
    /// replacing one under the same key and evicting the least recently used until it fits.
    /// Gives back what it removed (replaced, evicted), to be freed once the lock is released.
    fn insert(&mut self, key: Arc<str>, cost: u64, entry: Arc<Entry>) -> (Option<Arc<Entry>>, Vec<Arc<Entry>>) {
        let replaced = self.map.get(&key).copied().map(|slot| self.remove(slot));
        let mut evicted = Vec::new();
        while self.bytes + cost > self.capacity && self.tail != NIL {
            evicted.push(self.remove(self.tail));
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot { item: None, cost: 0, prev: NIL, next: NIL });
                self.slots.len() - 1
            }
        };
        self.slots[slot].item = Some((key.clone(), entry));
        self.slots[slot].cost = cost;
        self.push_front(slot);
        self.map.insert(key, slot);
        self.bytes += cost;
        (replaced, evicted)
    }

    /// Removes the entry under `key` if it is still `entry` (another thread may have stored a
    /// fresh one since), and gives it back to be freed once the lock is released.
    fn remove_if(&mut self, key: &str, entry: &Arc<Entry>) -> Option<Arc<Entry>> {
        let slot = *self.map.get(key)?;
        let current = &self.slots[slot].item.as_ref().expect("a mapped slot holds an entry").1;
        Arc::ptr_eq(current, entry).then(|| self.remove(slot))
    }

    fn remove(&mut self, slot: usize) -> Arc<Entry> {
        self.unlink(slot);
        let (key, entry) = self.slots[slot].item.take().expect("a linked slot holds an entry");
        self.map.remove(&key);
        self.bytes -= self.slots[slot].cost;
        self.free.push(slot);
        entry
    }

    fn unlink(&mut self, slot: usize) {
        let Slot { prev, next, .. } = self.slots[slot];
        match prev {
            NIL => self.head = next,
            p => self.slots[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n].prev = prev,
        }
    }

    fn push_front(&mut self, slot: usize) {
        self.slots[slot].prev = NIL;
        self.slots[slot].next = self.head;
        match self.head {
            NIL => self.tail = slot,
            h => self.slots[h].prev = slot,
        }
        self.head = slot;
    }

    /// The bytes the linked entries cost, checking that the list, the map and the free slots
    /// agree, for tests.
    #[cfg(test)]
    fn audit(&self) -> u64 {
        let (mut bytes, mut linked, mut slot, mut prev) = (0, 0, self.head, NIL);
        while slot != NIL {
            let (key, _) = self.slots[slot].item.as_ref().expect("a linked slot holds an entry");
            assert_eq!(self.map[key], slot);
            assert_eq!(self.slots[slot].prev, prev);
            bytes += self.slots[slot].cost;
            linked += 1;
            (prev, slot) = (slot, self.slots[slot].next);
        }
        assert_eq!(self.tail, prev);
        assert_eq!(linked, self.map.len());
        assert_eq!(linked + self.free.len(), self.slots.len());
        bytes
    }

    /// The keys from most to least recently used, for tests.
    #[cfg(test)]
    fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut slot = self.head;
        while slot != NIL {
            keys.push(self.slots[slot].item.as_ref().unwrap().0.to_string());
            slot = self.slots[slot].next;
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;
    use crate::kinds::test_support::{header, http_request};
    use crate::FileError;

    fn cache(capacity_bytes: u64) -> FileCache {
        FileCache::new(serde_json::from_value(json!({ "capacity_bytes": capacity_bytes })).unwrap()).unwrap()
    }

    const MODIFIED: Duration = Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT

    /// A request for `path` coming back from `static_file` with `status` and `body`.
    fn read_back(path: &str, status: u16, body: &[u8]) -> Request {
        let mut req = http_request("GET", path, &[]);
        req.response.status = status;
        req.response.body = body.to_vec();
        req.response.headers.set("Content-Type", b"text/plain; charset=utf-8");
        req.response.headers.set("Last-Modified", b"Sun, 06 Nov 1994 08:49:37 GMT");
        let meta = FileMeta { len: body.len() as u64, modified: UNIX_EPOCH + MODIFIED, path: None };
        req.file = Some(FileRead { result: Ok(meta) });
        req
    }

    /// Passes the request through a fresh instance of `c`.
    fn visit(c: &FileCache, req: &mut Request) -> Output {
        match c.instance(0).handle(req) {
            Step::Next(output) => output,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn miss_then_read_then_hit_shares_one_body() {
        let c = cache(1 << 20);
        let mut first = http_request("GET", "/a.txt", &[]);
        assert_eq!(visit(&c, &mut first), MISS);
        let mut back = read_back("/a.txt", 200, b"hello");
        assert_eq!(visit(&c, &mut back), HIT);
        assert!(back.file.is_none(), "the cache takes the read's outcome");
        let stored = back.response.shared.clone().expect("the stored body is shared");
        assert_eq!(&*stored, b"hello");

        let mut again = http_request("HEAD", "/a.txt?x=1", &[]);
        assert_eq!(visit(&c, &mut again), HIT);
        assert_eq!(again.response.status, 200);
        assert!(Arc::ptr_eq(again.response.shared.as_ref().unwrap(), &stored), "not copied");
        assert!(again.response.body.is_empty());
        assert_eq!(header(&again, "Content-Type").as_deref(), Some("text/plain; charset=utf-8"));
        assert_eq!(header(&again, "Last-Modified").as_deref(), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(
            c.stats(),
            CacheStats { hits: 1, misses: 1, inserts: 1, evictions: 0, stale: 0, bytes: 5 + 6, entries: 1 }
        );
        assert_eq!(
            c.counters(),
            [("hits", 1), ("misses", 1), ("inserts", 1), ("evictions", 0), ("stale", 0), ("bytes", 11), ("entries", 1)]
        );
    }

    #[test]
    fn hit_with_if_modified_since_is_304_without_body() {
        let c = cache(1 << 20);
        visit(&c, &mut read_back("/a.txt", 200, b"hello"));
        let mut req = http_request("GET", "/a.txt", &[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(visit(&c, &mut req), HIT);
        assert_eq!(req.response.status, 304);
        assert!(req.response.bytes().is_empty());
        assert_eq!(header(&req, "Last-Modified").as_deref(), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(header(&req, "Content-Type"), None);
    }

    #[test]
    fn responses_other_than_200_are_sent_not_stored() {
        let c = cache(1 << 20);
        for status in [304, 404] {
            let mut req = read_back("/a.txt", status, b"");
            assert_eq!(visit(&c, &mut req), HIT);
            assert_eq!(req.response.status, status);
            assert!(req.response.shared.is_none());
        }
        let mut req = http_request("GET", "/gone", &[]);
        req.response.set_text(404, "Not Found\n");
        req.file = Some(FileRead { result: Err(FileError::NotFound) });
        assert_eq!(visit(&c, &mut req), HIT);
        assert_eq!(c.stats().entries, 0);
        assert_eq!(visit(&c, &mut http_request("GET", "/a.txt", &[])), MISS);
    }

    #[test]
    fn other_methods_miss_even_when_stored() {
        let c = cache(1 << 20);
        visit(&c, &mut read_back("/a.txt", 200, b"hello"));
        let mut req = http_request("POST", "/a.txt", &[]);
        assert_eq!(visit(&c, &mut req), MISS);
        assert_eq!(req.response.status, 0);
    }

    #[test]
    fn least_recently_used_is_evicted_first_by_bytes() {
        // Each entry costs 10 body bytes plus its 2-byte key: three fit in 36 bytes.
        let c = cache(36);
        for path in ["/a", "/b", "/c"] {
            visit(&c, &mut read_back(path, 200, &[b'x'; 10]));
        }
        assert_eq!(c.shared.lock().keys(), ["/c", "/b", "/a"]);
        assert_eq!(visit(&c, &mut http_request("GET", "/a", &[])), HIT);
        assert_eq!(c.shared.lock().keys(), ["/a", "/c", "/b"]);

        visit(&c, &mut read_back("/d", 200, &[b'x'; 10]));
        assert_eq!(c.shared.lock().keys(), ["/d", "/a", "/c"]);
        assert_eq!(visit(&c, &mut http_request("GET", "/b", &[])), MISS);

        // 22 bytes need two entries gone.
        visit(&c, &mut read_back("/e", 200, &[b'x'; 20]));
        assert_eq!(c.shared.lock().keys(), ["/e", "/d"]);
        let stats = c.stats();
        assert_eq!((stats.bytes, stats.entries, stats.evictions, stats.inserts), (34, 2, 3, 5));
        assert_eq!(c.shared.lock().audit(), 34);
    }

    #[test]
    fn storing_a_key_again_replaces_it_and_its_bytes() {
        let c = cache(100);
        visit(&c, &mut read_back("/a", 200, b"old"));
        visit(&c, &mut read_back("/b", 200, b"bb"));
        visit(&c, &mut read_back("/a", 200, b"newer"));
        assert_eq!(c.shared.lock().keys(), ["/a", "/b"]);
        assert_eq!(c.stats().bytes, (5 + 2) + (2 + 2));
        let mut req = http_request("GET", "/a", &[]);
        visit(&c, &mut req);
        assert_eq!(req.response.bytes(), b"newer");
    }

    #[test]
    fn an_entry_over_the_capacity_is_sent_not_stored() {
        let c = cache(16);
        visit(&c, &mut read_back("/a", 200, b"small"));
        let mut req = read_back("/big", 200, &[b'x'; 20]);
        assert_eq!(visit(&c, &mut req), HIT);
        assert_eq!(req.response.bytes(), [b'x'; 20]);
        assert!(req.response.shared.is_none());
        assert_eq!(c.shared.lock().keys(), ["/a"], "nothing evicted for it");
        assert_eq!(c.stats().inserts, 1);
    }

    #[test]
    fn instances_share_the_factory_cache() {
        let c = cache(1 << 20);
        let mut one = c.instance(0);
        let mut two = c.instance(1);
        one.handle(&mut read_back("/a", 200, b"x"));
        assert!(matches!(two.handle(&mut http_request("GET", "/a", &[])), Step::Next(HIT)));
    }

    #[test]
    fn concurrent_use_keeps_the_byte_account() {
        const LOOKUPS: u64 = 5_000;
        let c = cache(400);
        std::thread::scope(|scope| {
            for worker in 0..4u64 {
                let mut stage = c.instance(worker as usize);
                scope.spawn(move || {
                    for i in 0..LOOKUPS {
                        let path = format!("/{}", (i * 7 + worker) % 50);
                        if let Step::Next(MISS) = stage.handle(&mut http_request("GET", &path, &[])) {
                            let size = (i % 90) as usize;
                            stage.handle(&mut read_back(&path, 200, &vec![b'x'; size]));
                        }
                    }
                });
            }
        });
        let stats = c.stats();
        assert_eq!(stats.hits + stats.misses, 4 * LOOKUPS);
        assert_eq!(stats.inserts, stats.misses);
        assert_eq!(c.shared.lock().audit(), stats.bytes);
        assert!(stats.bytes <= 400, "{stats:?}");
        assert!(stats.evictions > 0 && stats.hits > 0, "{stats:?}");
    }

    /// Haboob's shape with the real `static_file` stage: the read's outcome left in `req.file`
    /// is what the cache stores.
    #[test]
    fn static_file_hands_its_read_to_the_cache() {
        let root = crate::kinds::test_support::temp_dir("cache-haboob");
        std::fs::write(root.join("page.html"), b"<h1>hi</h1>").unwrap();
        let c = cache(1 << 20);
        let mut cache_stage = c.instance(0);
        let mut read = crate::build("static_file", &json!({ "root": root })).unwrap().instance(0);

        let mut req = http_request("GET", "/page.html", &[]);
        assert!(matches!(cache_stage.handle(&mut req), Step::Next(MISS)));
        let Step::Io(crate::IoOp::ReadFile(op), Output::SELF) = read.handle(&mut req) else { panic!("a read") };
        // What the engine's file thread does.
        let path = op.root.join(&op.relative);
        req.response.body = std::fs::read(&path).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let path = Some(Arc::from(path.canonicalize().unwrap()));
        req.file = Some(FileRead { result: Ok(FileMeta { len: 11, modified, path }) });
        assert!(matches!(read.handle(&mut req), Step::Next(Output::NEXT)));
        assert!(matches!(cache_stage.handle(&mut req), Step::Next(HIT)));
        assert_eq!((req.response.status, req.response.bytes()), (200, &b"<h1>hi</h1>"[..]));

        let mut again = http_request("GET", "/page.html", &[]);
        assert!(matches!(cache_stage.handle(&mut again), Step::Next(HIT)));
        assert!(Arc::ptr_eq(again.response.shared.as_ref().unwrap(), req.response.shared.as_ref().unwrap()));
        assert_eq!(header(&again, "Content-Type").as_deref(), Some("text/html; charset=utf-8"));
        assert_eq!(header(&again, "Last-Modified").unwrap(), crate::http::http_date(modified));

        // Changed on disk: the entry is dropped and the request read again.
        std::fs::write(root.join("page.html"), b"<h1>changed</h1>").unwrap();
        let mut changed = http_request("GET", "/page.html", &[]);
        assert!(matches!(cache_stage.handle(&mut changed), Step::Next(MISS)));
        assert_eq!((c.stats().stale, c.stats().entries), (1, 0));
    }

    #[test]
    fn zero_capacity_is_refused() {
        let err = crate::build("file_cache", &json!({ "capacity_bytes": 0 })).err().unwrap();
        assert_eq!(err, BuildError::bad("capacity_bytes", "`capacity_bytes` must be at least 1"));
    }
}
