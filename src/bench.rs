//! (Being written.)
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}
pub async fn run(_s: &crate::config::Settings, _a: BenchArgs) -> anyhow::Result<()> { Ok(()) }
