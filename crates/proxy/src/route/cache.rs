//! A server's own cache of host → backend answers ([`RouteCache`]), in front of a [`Resolve`] that offers a
//! [`Resolve::version`]. With per-core workers each worker has its own, so a cached request takes no lock
//! another thread takes and calls nothing in the resolver (no hostname validation, no allocation): one
//! atomic load of the version, one hash lookup.
//!
//! Entries are weak references: a backend the resolver dropped (its instance went down) is freed with its
//! pooled connections as soon as no request uses it, whatever this cache still holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::{Backend, Resolve};

/// More distinct hosts than this (all of them routes: only answers are cached) empty the cache.
const MAX_ENTRIES: usize = 4096;

/// A cache of a resolver's answers, as each server (each per-core worker) keeps one; public for the
/// routing benchmark (`examples/route_lookup.rs`).
#[derive(Default)]
pub struct RouteCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    version: u64,
    hosts: HashMap<Box<str>, Weak<Backend>>,
}

impl RouteCache {
    /// The backend for `host` (normalized as [`Resolve::resolve`] expects), from the cache when the
    /// resolver's version has not changed since it was cached.
    pub fn resolve(&self, resolver: &dyn Resolve, host: &str) -> Option<Arc<Backend>> {
        let Some(version) = resolver.version() else {
            return resolver.resolve(host);
        };
        {
            let mut e = self.lock();
            if e.version == version {
                if let Some(b) = e.hosts.get(host).and_then(Weak::upgrade) {
                    return Some(b);
                }
            } else {
                e.hosts.clear();
                e.version = version;
            }
        }
        // The version was read before asking: an answer that changes meanwhile is cached under the old
        // version, which the next lookup sees as stale.
        let b = resolver.resolve(host)?;
        let mut e = self.lock();
        if e.version == version {
            if e.hosts.len() >= MAX_ENTRIES {
                e.hosts.clear();
            }
            e.hosts.insert(host.into(), Arc::downgrade(&b));
        }
        Some(b)
    }

    /// Uncontended with per-core workers (each server has its own cache).
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{RouteTable, TcpDial};

    fn backend(name: &str) -> Arc<Backend> {
        Backend::new(name, Arc::new(TcpDial(([127, 0, 0, 1], 9).into())))
    }

    #[test]
    fn follows_inserts_and_removals() {
        let t = RouteTable::default();
        let c = RouteCache::default();
        assert!(c.resolve(&t, "a.test").is_none());
        t.insert("a.test", backend("a"));
        assert_eq!(c.resolve(&t, "a.test").unwrap().name(), "a");
        assert_eq!(c.resolve(&t, "a.test").unwrap().name(), "a");
        t.insert("a.test", backend("a2"));
        assert_eq!(c.resolve(&t, "a.test").unwrap().name(), "a2");
        t.remove("a.test");
        assert!(c.resolve(&t, "a.test").is_none());
    }

    #[test]
    fn does_not_keep_removed_backends_alive() {
        let t = RouteTable::default();
        let c = RouteCache::default();
        let b = backend("a");
        let weak = Arc::downgrade(&b);
        t.insert("a.test", b);
        drop(c.resolve(&t, "a.test"));
        t.remove("a.test");
        assert!(
            weak.upgrade().is_none(),
            "the cache must not hold the backend"
        );
    }

    /// A resolver without a version is asked every time.
    #[test]
    fn unversioned_resolvers_are_not_cached() {
        struct Flip(std::sync::atomic::AtomicBool, Arc<Backend>);
        impl Resolve for Flip {
            fn resolve(&self, _: &str) -> Option<Arc<Backend>> {
                let on = !self.0.fetch_xor(true, std::sync::atomic::Ordering::SeqCst);
                on.then(|| self.1.clone())
            }
        }
        let r = Flip(false.into(), backend("a"));
        let c = RouteCache::default();
        assert!(c.resolve(&r, "h").is_some());
        assert!(c.resolve(&r, "h").is_none());
    }
}
