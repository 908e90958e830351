//! `strand-launcher`: the stock launcher with the built-in functions (`noop`, `sleep`, `echo`, ...).

use clap::Parser;

fn main() {
    let args = strand_launcher::LauncherArgs::parse();
    let registry = strand_launcher::exec::Registry::with_builtins();
    std::process::exit(strand_launcher::launch(args, registry));
}
