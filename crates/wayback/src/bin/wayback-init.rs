//! `wayback-init`: wayback's init, PID 1 inside every instance's container ([`wayback_engine::init`]),
//! as a binary of its own. It runs once per container for the instance's whole life, and the pages a
//! position-independent binary's loader writes at start (its relocated data) are private to each
//! process: this binary holds only the init's code, so each container costs a fraction of what the
//! whole `wayback` binary (`wayback __init`, which still works) costs there. Started exactly like that
//! command: `wayback-init __init SPEC [MACHINE]`.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let spec = match args.as_slice() {
        [_, cmd, spec] | [_, cmd, spec, _] if cmd == "__init" => Path::new(spec),
        _ => {
            eprintln!(
                "usage: wayback-init __init SPEC [MACHINE] (started by wayback in a container)"
            );
            return ExitCode::from(2);
        }
    };
    match wayback_engine::init::main(spec) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("wayback-init: {e:#}");
            ExitCode::from(1)
        }
    }
}
