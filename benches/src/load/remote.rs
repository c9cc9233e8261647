//! `pi-bench load --connect ADDR --tls DIR`: load a `pi-server` this run did
//! not start, on this host or another.
//!
//! The network comes from the server's handshake (a SPEC given beside
//! `--connect` pins it: any other network is refused). Inputs are seeded
//! random tensors of the announced shape, normalised as the server says.
//! With `--weights` (the server's own weight file) the fixed-point oracle is
//! computed here from the announced network and those weights, and every
//! answer is checked against it; without, nothing is checked: the result
//! says so ([`ORACLE_SKIPPED`]) and its `bit_exact` fields are null. The
//! server's CPU time and memory are not visible from here.

use anyhow::{Context, Result, bail};
use pi_models::fixed::quantize_input;
use pi_protocol::ClientConfig;
use pi_protocol::transport::ChannelConfig;

use super::target::{Inputs, Target, connectors};
use super::{
    LoadOptions, LoadResult, ORACLE_CHECKED, ORACLE_SKIPPED, Progress, Remote, load_result,
    model_result, oracle_inputs, run_model, run_name,
};
use crate::machine::Mark;
use crate::workload::{Workload, random_input};

/// The certificate names of `clients` clients in `remote.tls`.
fn client_names(remote: &Remote, clients: usize) -> Result<Vec<String>> {
    let bundle = remote.tls.join("client.pem").exists();
    match (remote.names.len(), bundle) {
        // One bundle: every client presents it (the server's
        // --max-per-client must allow that many sessions).
        (_, true) => Ok(vec![
            remote
                .names
                .first()
                .cloned()
                .unwrap_or_else(|| "1".into());
            clients
        ]),
        (0, false) => Ok((1..=clients).map(|i| i.to_string()).collect()),
        (n, false) if n == clients => Ok(remote.names.clone()),
        (1, false) if clients == 1 => Ok(remote.names.clone()),
        (n, false) => bail!(
            "--name gives {n} certificate name(s) for {clients} clients: give one per client \
             (comma-separated), or none for client-1 .. client-{clients}"
        ),
    }
}

/// Runs the measurement against `remote` (see the module docs).
pub(super) fn run(
    opts: &LoadOptions,
    remote: &Remote,
    rt: &tokio::runtime::Runtime,
    progress: &mut dyn Progress,
) -> Result<LoadResult> {
    let names = client_names(remote, opts.clients)?;
    let channel = ChannelConfig {
        link: opts.link,
        ..ChannelConfig::default()
    };
    let expect = match opts.specs.first() {
        Some(spec) => Some(
            pi_models::Model::resolve(spec)
                .with_context(|| format!("network {spec:?}"))?
                .network
                .describe(),
        ),
        None => None,
    };
    let whole = Mark::now();
    let mut models = Vec::new();
    for &relu in &opts.relu {
        let mark = Mark::now();
        let target = Target {
            connectors: connectors(&remote.tls, &names, &channel)?,
            names: names.clone(),
            addr: remote.addr.clone(),
            server_name: remote
                .server_name
                .clone()
                .unwrap_or_else(|| pi_client::host_of(&remote.addr).to_string()),
            config: ClientConfig {
                expect: expect.clone(),
                ..opts.budget.config(relu)?
            },
            server_pid: None,
        };
        // The network, its normalisation and the ring, from a first handshake.
        let (model, ring) = rt
            .block_on(async {
                let (mut ch, session) = target.session(0).await?;
                let announced = (session.model().clone(), session.ring());
                session.close(&mut ch).await?;
                let _ = pi_protocol::transport::Channel::close(&mut ch).await;
                anyhow::Ok(announced)
            })
            .with_context(|| format!("the server at {}, ReLU mode {relu}", remote.addr))?;
        let canonical = model.network.spec.canonical();
        let spec = opts.specs.first().cloned().unwrap_or(canonical);
        let inputs = match &opts.weights {
            Some(w) => oracle_inputs(&Workload::announced(model.clone(), w, ring)?, opts.seed)?,
            None => {
                let s = model.network.tensors[model.network.input].shape;
                let shape = [s.c, s.h, s.w];
                let mut xs = Vec::new();
                for k in 0..4u64 {
                    let raw = random_input(&shape, opts.seed.wrapping_add(k + 1));
                    let x = model.prepare_input(raw, &shape).context("input")?;
                    xs.push(quantize_input(&x, ring).context("quantising the input")?);
                }
                Inputs { xs, oracle: None }
            }
        };
        let name = run_name(opts, &spec, relu);
        let result = rt.block_on(run_model(
            opts, &name, &target, &inputs, opts.seed, progress,
        ));
        let machine = mark.until_now();
        let (unloaded, capacity, rates) = result
            .with_context(|| format!("load on the server at {}, ReLU mode {relu}", remote.addr))?;
        models.push(model_result(
            &spec, &model, relu, unloaded, capacity, rates, machine,
        ));
    }
    let oracle = if opts.weights.is_some() {
        ORACLE_CHECKED
    } else {
        ORACLE_SKIPPED
    };
    Ok(load_result(
        opts,
        models,
        whole,
        Some(remote.addr.clone()),
        oracle,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_gets_a_certificate_name() {
        let dir = tempfile::tempdir().unwrap();
        let remote = |names: &[&str]| Remote {
            addr: "127.0.0.1:1".into(),
            tls: dir.path().to_path_buf(),
            names: names.iter().map(|s| s.to_string()).collect(),
            server_name: None,
        };
        // A key directory: client-1 .. client-K, or the names given.
        assert_eq!(client_names(&remote(&[]), 3).unwrap(), ["1", "2", "3"]);
        assert_eq!(client_names(&remote(&["a", "b"]), 2).unwrap(), ["a", "b"]);
        assert_eq!(client_names(&remote(&["7"]), 1).unwrap(), ["7"]);
        let e = client_names(&remote(&["a"]), 2).unwrap_err();
        assert!(e.to_string().contains("one per client"), "{e}");
        // One bundle: every client presents it.
        std::fs::write(dir.path().join("client.pem"), "x").unwrap();
        assert_eq!(client_names(&remote(&[]), 2).unwrap(), ["1", "1"]);
    }
}
