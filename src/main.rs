#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    tmctl::cli::main()
}
