//! The `simulator` command (being built; see issue 4).

fn main() -> std::process::ExitCode {
    eprintln!("simulator: not implemented yet");
    std::process::ExitCode::from(2)
}
