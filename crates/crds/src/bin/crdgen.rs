//! Writes the CRDs: `crdgen DIR` writes one file per CRD into DIR; `crdgen` prints them all.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let files = match molecule_crds::crd::rendered() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("crdgen: failed to render CRDs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if let Some(dir) = std::env::args_os().nth(1) {
        let dir = std::path::PathBuf::from(dir);
        files.iter().try_for_each(|(name, text)| std::fs::write(dir.join(name), text))
    } else {
        let mut out = std::io::stdout().lock();
        files.iter().try_for_each(|(_, text)| out.write_all(text.as_bytes()))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: failed to write CRDs: {e}");
            ExitCode::FAILURE
        }
    }
}
