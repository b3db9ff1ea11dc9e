use clap::Parser;

fn main() {
    stager::console_log::init();
    let cli = stager::cli::Cli::parse();
    std::process::exit(stager::commands::run(cli));
}
