//! `make bench`: what a Lambda chat costs in time, memory and calls, printed as one table and
//! written to a file the README links. `--smoke` runs every measurement at tiny sizes, so CI
//! keeps the code working; its figures say nothing about speed.

mod authorizer;
mod cold_start;
mod cost;
mod fan_out;
mod gateway_load;
mod handlers;
mod prices;
mod queued_rooms;
mod report;
mod rooms;
mod runtime_api;
mod size;
mod storage;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use report::Report;

/// Measures cold starts, handler cost, calls per message, the local gateway and deployment size.
#[derive(Debug, Parser)]
struct Args {
    /// Tiny sizes, for CI: checks that every figure is produced.
    #[arg(long)]
    smoke: bool,
    /// Folder of the function binaries to cold-start (host architecture).
    #[arg(long, default_value = "target/release")]
    functions: PathBuf,
    /// Folder of the deployment builds: `{name}/bootstrap` (cargo lambda's layout) or `{name}`.
    #[arg(long, default_value = "target/lambda")]
    deployment: PathBuf,
    /// The local-gateway binary to load.
    #[arg(long, default_value = "target/local/local-gateway")]
    gateway: PathBuf,
    /// Run only these sections (repeatable); all of them by default.
    #[arg(long, value_enum)]
    only: Vec<Section>,
    /// Where to write the report (Markdown).
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

// The warm handler figures are measured on the main thread, where this future runs.
/// The parts of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    Size,
    ColdStart,
    FanOut,
    Rooms,
    Handlers,
    Authorizer,
    Calls,
    Storage,
    Cost,
    QueuedRooms,
    Gateway,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (starts, iterations, invocations, clients, idle, duration) = if args.smoke {
        (2, 200, 5, 20, 100, Duration::from_millis(500))
    } else {
        (20, 20_000, 200, 1_000, 10_000, Duration::from_secs(5))
    };
    let run = |section| args.only.is_empty() || args.only.contains(&section);
    let mut report = Report::default();

    if run(Section::Size) {
        eprintln!("bench: deployment size");
        let (method, title) = if args.smoke {
            (zip::CompressionMethod::Stored, "Deployment size (smoke: debug build, zip stored)")
        } else {
            (zip::CompressionMethod::Deflated, "Deployment size (arm64 release)")
        };
        if let Err(error) = size::measure(&args.deployment, method, report.section(title)) {
            eprintln!("bench: {error}; build it first (make bench does)");
            return ExitCode::FAILURE;
        }
    }
    // The functions post to real WebSocket clients of an in-process gateway.
    let gateway = if run(Section::ColdStart) || run(Section::FanOut) {
        let settings = chat_local_gateway::Settings {
            address: "127.0.0.1:0".parse().expect("address"),
            template: chat_testing::workspace_root().join("template.yaml"),
            ..Default::default()
        };
        Some(chat_local_gateway::serve(settings).await.expect("the in-process gateway starts"))
    } else {
        None
    };
    if let (true, Some(gateway)) = (run(Section::ColdStart), &gateway) {
        eprintln!("bench: cold starts ({starts} per function)");
        cold_start::measure(&args.functions, starts, gateway, report.section("Cold start (host release build)")).await;
    }
    if let (true, Some(gateway)) = (run(Section::FanOut), &gateway) {
        eprintln!("bench: fan-out ({invocations} warm invocations)");
        let title = "Fan-out, warm (send-message host release build; dynalite; real @connections posts)";
        fan_out::measure(&args.functions, invocations, gateway, report.section(title)).await;
    }
    if run(Section::Rooms) {
        let sizes: &[usize] = if args.smoke { &[20, 50] } else { &[1_000, 10_000] };
        let title = "Rooms, warm (send-message host release build; dynalite; real @connections posts)";
        let figures = report.section(title);
        for (n, &members) in sizes.iter().enumerate() {
            eprintln!("bench: a room of {members}");
            rooms::measure(&args.functions, members, 3, n + 1 == sizes.len(), figures).await;
        }
    }
    if run(Section::QueuedRooms) {
        let sizes: &[usize] = if args.smoke { &[2_500] } else { &[10_000, 100_000] };
        let title = "Big rooms through the fan-out queue (release builds; dynalite; moto's SQS; @connections capped at 10,000/s)";
        let figures = report.section(title);
        for &members in sizes {
            eprintln!("bench: a room of {members} through the queue");
            queued_rooms::measure(&args.functions, members, figures).await;
        }
    }
    if run(Section::Handlers) {
        eprintln!("bench: warm handlers ({iterations} events per route)");
        handlers::warm(iterations, report.section("Handler cost per event, warm (in-memory store)")).await;
    }
    if run(Section::Authorizer) {
        eprintln!("bench: authorizer, warm ({} tokens per algorithm)", iterations / 10);
        authorizer::warm(iterations / 10, report.section("Authorizer, warm (local issuer)")).await;
    }
    if run(Section::Calls) {
        eprintln!("bench: calls per event");
        handlers::calls(report.section("Calls per event (counted against dynalite)")).await;
    }
    if run(Section::Cost) {
        let sizes = if args.smoke {
            cost::Sizes { rooms: [3, 5, 8], conversations: [5, 12] }
        } else {
            cost::Sizes { rooms: [10, 100, 1_000], conversations: [100, 1_000] }
        };
        for mode in [chat_core::identity::Mode::Token, chat_core::identity::Mode::Demo] {
            eprintln!("bench: cost per event ({mode:?} mode)");
            let title = "Cost per event (DynamoDB units by its sizing rules, counted against dynalite; prices in crates/bench/src/prices.rs)";
            cost::measure(&sizes, mode, report.section(title)).await;
        }
        cost::metrics_month(report.section("Cost per month"));
    }
    if run(Section::Storage) {
        let runs = if args.smoke { 5 } else { 200 };
        eprintln!("bench: storage ({runs} warm invocations each)");
        let title = "Stored messages, warm (host release builds; dynalite; a counting @connections endpoint)";
        storage::measure(&args.functions, runs, report.section(title)).await;
    }
    if run(Section::Gateway) {
        eprintln!("bench: local gateway ({clients} clients, then {idle} idle connections)");
        let figures = report.section("Local gateway (in-process backend)");
        gateway_load::measure(&args.gateway, clients, idle, duration, figures).await;
    }

    let mode = if args.smoke { "bench-smoke" } else { "bench" };
    let markdown = report.to_markdown(mode);
    print!("{markdown}");
    if let Err(error) = std::fs::write(&args.out, &markdown) {
        eprintln!("bench: cannot write {}: {error}", args.out.display());
        return ExitCode::FAILURE;
    }
    let missing: Vec<_> = report.figures().filter(|figure| figure.value.is_empty()).map(|f| f.name.clone()).collect();
    if !missing.is_empty() {
        eprintln!("bench: figures not produced: {missing:?}");
        return ExitCode::FAILURE;
    }
    eprintln!("bench: wrote {}", args.out.display());
    ExitCode::SUCCESS
}
