//! Snapshot catalogs (snapper, btrbk, plain subvolumes): placeholder until the module lands.
