use clap::Parser;

fn main() {
    let cli = stager::cli::Cli::parse();
    std::process::exit(stager::cli::run(cli));
}
