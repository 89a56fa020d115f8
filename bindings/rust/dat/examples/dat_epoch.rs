//! One epoch of distributed adversarial training on one worker: the loop of
//! examples/c/dat_epoch.c in Rust, with the same settings, so both end with
//! bit-identical weights (tests/examples/test_three_languages.sh).
//!
//!     cargo run --example dat_epoch -- [fashion-mnist folder] [weights.bin]
use std::io::Write;

use dat::{sys, Attack, Comm, Context, DType, Dataset, Loss, Model, Optimizer, QuantMode,
          Quantizer, Tensor};

fn run(dir: &str, out: Option<&str>) -> dat::Result<()> {
    let ctx = Context::cpu(2022, 2)?;

    let mut d = dat::DatasetOptions::default();
    d.limit = 2000;
    d.batch_size = 100;
    d.seed = 7;
    d.drop_last = 1;
    let mut data = Dataset::open(&ctx, &d, &format!("{}/train-images-idx3-ubyte.gz", dir),
                                 Some(&format!("{}/train-labels-idx1-ubyte.gz", dir)), &[], &[])?;

    let mut m = dat::ModelOptions::default();
    m.init_seed = 1;
    let mut model = Model::preset(&ctx, "mlp", &m)?;

    let mut a = dat::AttackOptions::default();
    a.eps = 0.1;
    a.steps = 3;
    a.seed = 11;
    let mut attack = Attack::new(&ctx, &a)?;

    let mut q = dat::QuantizerOptions::default();
    q.bits = 8;
    q.seed = 5;
    let mut quant = Quantizer::new(&ctx, &q)?;
    let mut comm = Comm::new_self(&ctx)?;

    let mut o = dat::OptimOptions::default(); // the paper's LAMB
    o.kind = sys::DAT_OPTIM_ADAMW;
    o.lr = 0.01;
    o.eps = 1e-6;
    o.weight_decay = 1e-4;
    o.bias_correction = 0;
    o.lalr = 1;
    let mut optim = Optimizer::for_model(&mut model, &o)?;

    let b = d.batch_size as i64;
    let mut x = Tensor::new(&ctx, DType::Float32, &[b, 1, 28, 28])?;
    let mut x_adv = Tensor::new(&ctx, DType::Float32, &[b, 1, 28, 28])?;
    let mut y = Tensor::new(&ctx, DType::Int32, &[b])?;

    data.set_epoch(0)?;
    let mut loss = 0.0;
    loop {
        if data.next_batch(&mut x, Some(&mut y))? == 0 {
            break;
        }
        let step = optim.get_step()? as u64;
        attack.perturb(&mut model, &x, Some(&y), &mut x_adv)?; // A1
        let objective = Loss { clean_weight: 1.0, x_clean: Some(&x), ..Loss::default() };
        loss = model.loss_backward(&x_adv, Some(&y), &objective)?; // A2
        comm.allreduce_grads(&mut model, Some(&mut quant), QuantMode::OneSided, step)?; // 3-4
        optim.step_model(&mut model)?; // A4
    }
    println!("dat_epoch: {} steps, last loss {:.6}", optim.get_step()?, loss);

    if let Some(path) = out {
        let params = model.params()?;
        let w: &[f32] = params.as_slice()?; // the model's memory, no copy
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::File::create(path)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(|e| dat::Error {
                status: sys::DAT_ERR_IO,
                message: format!("{}: {}", path, e),
            })?;
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map(|s| s.as_str()).unwrap_or("/usr/share/datasets/fashion-mnist");
    if let Err(e) = run(dir, args.get(2).map(|s| s.as_str())) {
        eprintln!("dat_epoch: {}", e);
        std::process::exit(1);
    }
}
