//! Snapshot selectors: placeholder until the module lands.
