//! One module per command.
pub mod down;
pub mod extend;
pub mod logs;
pub mod status;
pub mod up;
