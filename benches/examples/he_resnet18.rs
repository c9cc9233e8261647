//! Offline linear step of ResNet18 or an HRN (CIFAR, 32x32, 100 classes):
//! per-layer and total time and traffic.
//! `cargo run --release -p pi-bench --example he_resnet18 -- [m] [verify] [hrn-AxBxCx]`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let m: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(64);
    let verify = std::env::args().nth(2).is_some_and(|s| s == "verify");
    let threads = rayon_threads();
    let layers = match std::env::args().nth(3) {
        Some(spec) => {
            let f: Vec<usize> = spec
                .trim_start_matches("hrn-")
                .split('x')
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            if f.len() != 3 {
                return Err(format!("expected hrn-AxBxCx, got {spec}").into());
            }
            pi_bench::he::hrn_layers(f[0], f[1], f[2], m, 32, 100)
        }
        None => pi_bench::he::resnet18_layers(m, 32, 100),
    };
    let r = pi_bench::he::run_offline_linear(&layers, 1, verify)?;
    println!(
        "{:<20} {:>8} {:>8} {:>10} {:>10} {:>7} {:>5} {:>5}  {:<18} {:>6}",
        "layer",
        "client s",
        "server s",
        "up KB",
        "down KB",
        "prods",
        "up",
        "down",
        "Cb,G,th,tw",
        "margin"
    );
    for l in &r.layers {
        println!(
            "{:<20} {:>8.3} {:>8.3} {:>10.1} {:>10.1} {:>7} {:>5} {:>5}  {:<18} {:>6.2}",
            l.name,
            l.client_seconds,
            l.server_seconds,
            l.bytes_client_to_server as f64 / 1e3,
            l.bytes_server_to_client as f64 / 1e3,
            l.products,
            l.upload_cts,
            l.reply_cts,
            format!("{:?}", l.tiling),
            l.noise_margin_bits
        );
    }
    println!(
        "total: {:.2} s, {:.1} MB client->server, {:.1} MB server->client, {} products, {threads} threads, verified: {verify}",
        r.seconds,
        r.bytes_client_to_server as f64 / 1e6,
        r.bytes_server_to_client as f64 / 1e6,
        r.products
    );
    Ok(())
}

fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into())
}
