//! The safe wrappers against the built library: values, errors with their
//! messages, and one training step through every part.
use dat::{sys, Attack, Comm, Context, DType, Dataset, GradSync, GradSyncOptions, Loss, Model,
          ModelBuilder, Optimizer, Position, QuantMode, Quantizer, Tensor, UniqueId};

fn ctx() -> Context {
    Context::cpu(1234, 2).unwrap()
}

#[test]
fn version_and_context() {
    assert_eq!(dat::version_number(), sys::DAT_VERSION_NUMBER);
    assert_eq!(dat::version().matches('.').count(), 2);
    let c = ctx();
    assert_eq!(c.seed().unwrap(), 1234);
    assert_eq!(c.num_threads().unwrap(), 2);
    assert_eq!(c.device().unwrap(), (sys::DAT_DEVICE_CPU, -1));
    assert!(dat::cuda_device_count().unwrap() >= 0);
}

#[test]
fn errors_carry_status_and_message() {
    let c = ctx();
    let e = Tensor::new(&c, DType::Float32, &[2, 0]).err().unwrap();
    assert_eq!(e.status, sys::DAT_ERR_INVALID_ARG);
    assert_eq!(e.name(), "DAT_ERR_INVALID_ARG");
    assert!(e.message.contains("shape[1] = 0"), "{}", e.message);
    assert!(e.to_string().starts_with("DAT_ERR_INVALID_ARG: "));
    let e = Model::preset(&c, "no-such-model", &Default::default()).err().unwrap();
    assert!(e.message.contains("mlp"), "the message lists the presets: {}", e.message);
    dat::clear_error();
    assert_eq!(dat::last_error(), "");
}

#[test]
fn tensors_round_trip_and_share_memory() {
    let c = ctx();
    let mut t = Tensor::from_slice(&c, &[2, 3], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    assert_eq!(t.shape().unwrap(), vec![2, 3]);
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    t.as_mut_slice::<f32>().unwrap()[4] = 9.5; // writes libdat's memory directly
    assert_eq!(t.to_vec::<f32>().unwrap()[4], 9.5);
    assert!(t.to_vec::<i32>().is_err(), "the element type must be the dtype");
    assert!(t.write(&[1.0f32]).is_err(), "the length must be the element count");
    let mut i = Tensor::new(&c, DType::Int32, &[3]).unwrap();
    assert_eq!(i.fill(0.5).unwrap_err().status, sys::DAT_ERR_INVALID_ARG);
    i.fill(7.0).unwrap();
    assert_eq!(i.as_slice::<i32>().unwrap(), &[7, 7, 7]);
    let mut u = Tensor::new(&c, DType::Float32, &[1000]).unwrap();
    u.fill_uniform(0.0, 1.0, 3, 0).unwrap();
    assert!(u.as_slice::<f32>().unwrap().iter().all(|&v| (0.0..1.0).contains(&v)));
}

#[test]
fn one_training_step_through_every_part() {
    let c = ctx();
    let mut model = Model::preset(&c, "mlp", &Default::default()).unwrap();
    assert_eq!(model.shape().unwrap(), (1, 28, 28, 10));
    assert_eq!(model.segments().unwrap()[0].name, "fc1.weight");
    let mut x = Tensor::new(&c, DType::Float32, &[4, 1, 28, 28]).unwrap();
    x.fill_uniform(0.0, 1.0, 1, 0).unwrap();
    let y = Tensor::from_slice(&c, &[4], &[0i32, 1, 2, 3]).unwrap();
    let mut x_adv = Tensor::new(&c, DType::Float32, &[4, 1, 28, 28]).unwrap();
    let mut a = dat::AttackOptions::default();
    a.steps = 2;
    let mut attack = Attack::new(&c, &a).unwrap();
    attack.perturb(&mut model, &x, Some(&y), &mut x_adv).unwrap();
    assert_eq!(attack.step().unwrap(), 1);
    let diff = x.to_vec::<f32>().unwrap().iter().zip(x_adv.to_vec::<f32>().unwrap())
        .map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff > 0.0 && diff <= a.eps + 1e-6);
    let loss = model.loss_backward(&x_adv, Some(&y), &Loss::default()).unwrap();
    assert!(loss > 0.0);
    let mut q = dat::QuantizerOptions::default();
    q.bits = 4;
    let mut quant = Quantizer::new(&c, &q).unwrap();
    let mut comm = Comm::new_self(&c).unwrap();
    comm.allreduce_grads(&mut model, Some(&mut quant), QuantMode::TwoSided, 0).unwrap();
    let before = model.params_to_vec().unwrap();
    let mut optim = Optimizer::for_model(&mut model, &Default::default()).unwrap();
    optim.step_model(&mut model).unwrap();
    assert_eq!(optim.get_step().unwrap(), 1);
    assert_ne!(model.params_to_vec().unwrap(), before);
    let state = optim.state_save().unwrap();
    optim.set_step(5).unwrap();
    optim.state_load(&state).unwrap();
    assert_eq!(optim.get_step().unwrap(), 1);
    let (clean, robust) = attack.robust_accuracy(&mut model, &x, &y, None).unwrap();
    assert!(robust <= clean && clean <= 4);
}

#[test]
fn builder_quantizer_and_communicator() {
    let c = ctx();
    let mut b = ModelBuilder::new(&c, 1, 2, 2).unwrap();
    let flat = b.add(&ModelBuilder::spec(sys::DAT_LAYER_FLATTEN).unwrap(), None, 0, -1).unwrap();
    let mut fc = ModelBuilder::spec(sys::DAT_LAYER_LINEAR).unwrap();
    fc.out_features = 2;
    let out = b.add(&fc, Some("fc"), flat, -1).unwrap();
    assert!(b.add(&fc, Some("fc"), flat, -1).is_err(), "a repeated name is refused");
    let mut m = b.finish(out, 0).unwrap();
    assert_eq!(m.params().unwrap().numel().unwrap(), 10);

    let mut q = dat::QuantizerOptions::default();
    q.bits = 32;
    let mut quant = Quantizer::new(&c, &q).unwrap();
    assert_eq!(quant.options().unwrap().bits, 32);
    let x = Tensor::from_slice(&c, &[3], &[1.5f32, -2.0, 0.25]).unwrap();
    let codes = quant.encode_vec(&x, 0).unwrap();
    assert_eq!(codes.len(), quant.encoded_size(3).unwrap());
    let mut back = Tensor::new(&c, DType::Float32, &[3]).unwrap();
    quant.decode(&codes, &mut back, false).unwrap();
    assert_eq!(back.to_vec::<f32>().unwrap(), vec![1.5, -2.0, 0.25]);

    let mut comm = Comm::new_self(&c).unwrap();
    assert_eq!((comm.rank().unwrap(), comm.size().unwrap()), (0, 1));
    let mut t = Tensor::from_slice(&c, &[2], &[1.0f32, 2.0]).unwrap();
    comm.allreduce(&mut t, sys::DAT_REDUCE_SUM).unwrap();
    comm.allreduce_quantized(&mut t, &mut quant, QuantMode::OneSided, 1).unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
    assert!(comm.stats().unwrap().calls >= 2);
    comm.reset_stats().unwrap();
    assert_eq!(comm.stats().unwrap().calls, 0);
    comm.abort().unwrap();
    assert_eq!(comm.broadcast(&mut t, 0).unwrap_err().status, sys::DAT_ERR_STATE);
}

fn batch(c: &Context) -> (Tensor<'_>, Tensor<'_>) {
    let mut x = Tensor::new(c, DType::Float32, &[4, 1, 28, 28]).unwrap();
    x.fill_uniform(0.0, 1.0, 5, 0).unwrap();
    (x, Tensor::from_slice(c, &[4], &[3i32, 1, 4, 1]).unwrap())
}

#[test]
fn grad_sync_gives_the_gradient_of_allreduce_grads() {
    let c = ctx();
    let (x, y) = batch(&c);
    let mut comm = Comm::new_self(&c).unwrap();
    // Exact: the mean over one rank is the gradient itself.
    let mut plain = Model::preset(&c, "mlp", &Default::default()).unwrap();
    plain.loss_backward(&x, Some(&y), &Loss::default()).unwrap();
    let want = plain.grads().unwrap().to_vec::<f32>().unwrap();
    let mut m = Model::preset(&c, "mlp", &Default::default()).unwrap();
    let opts = GradSyncOptions { bucket_elems: 1000, ..Default::default() };
    assert_eq!(GradSyncOptions::default().bucket_elems, 1 << 20);
    let calls = GradSync::scope(&mut comm, &mut m, None, &opts, |sync| {
        assert!(sync.overlaps()?, "self communicator, CPU model: a thread");
        for step in 0..2 {
            sync.begin(step)?;
            assert!(sync.is_armed());
            let loss = sync.loss_backward(&x, Some(&y), &Loss::default())?;
            assert!(loss > 0.0);
            sync.end()?;
            let got = sync.model()?.grads()?.to_vec::<f32>()?;
            assert_eq!(got, want, "step {}", step);
        }
        Ok(sync.comm()?.stats()?.calls)
    }).unwrap();
    assert_eq!(calls, 2);
    // Destroyed: the model and the communicator are free again.
    assert_eq!(m.grads().unwrap().to_vec::<f32>().unwrap(), want);
    comm.reset_stats().unwrap();

    // Quantized: the bits of allreduce_grads with the same quantizer settings and step.
    let mut q = dat::QuantizerOptions::default();
    q.bits = 4;
    q.bucket_size = 64;
    let mut qa = Quantizer::new(&c, &q).unwrap();
    let mut qb = Quantizer::new(&c, &q).unwrap();
    for mode in [QuantMode::OneSided, QuantMode::TwoSided] {
        plain.loss_backward(&x, Some(&y), &Loss::default()).unwrap();
        comm.allreduce_grads(&mut plain, Some(&mut qa), mode, 7).unwrap();
        let want = plain.grads().unwrap().to_vec::<f32>().unwrap();
        let opts = GradSyncOptions { bucket_elems: 64 * 20, mode };
        GradSync::scope(&mut comm, &mut m, Some(&mut qb), &opts, |sync| {
            sync.begin(7)?;
            sync.loss_backward(&x, Some(&y), &Loss::default())?;
            sync.end()
        }).unwrap();
        assert_eq!(m.grads().unwrap().to_vec::<f32>().unwrap(), want, "{:?}", mode);
    }
}

#[test]
fn grad_sync_refuses_wrong_usage() {
    let c = ctx();
    let (x, y) = batch(&c);
    let mut comm = Comm::new_self(&c).unwrap();
    let mut m = Model::preset(&c, "mlp", &Default::default()).unwrap();
    let bad = GradSyncOptions { bucket_elems: 0, ..Default::default() };
    let e = GradSync::scope(&mut comm, &mut m, None, &bad, |_| Ok(())).unwrap_err();
    assert_eq!(e.status, sys::DAT_ERR_INVALID_ARG);
    assert!(e.message.contains("bucket_elems"), "{}", e.message);
    let mut q = Quantizer::new(&c, &Default::default()).unwrap();
    let odd = GradSyncOptions { bucket_elems: 1000, ..Default::default() };
    let e = GradSync::scope(&mut comm, &mut m, Some(&mut q), &odd, |_| Ok(())).unwrap_err();
    assert!(e.message.contains("not a multiple"), "{}", e.message);

    GradSync::scope(&mut comm, &mut m, None, &Default::default(), |sync| {
        let e = sync.end().unwrap_err();
        assert_eq!(e.status, sys::DAT_ERR_STATE);
        assert!(e.message.contains("not armed"), "{}", e.message);
        sync.begin(0)?;
        let e = sync.begin(1).unwrap_err();
        assert_eq!(e.status, sys::DAT_ERR_STATE);
        assert!(e.message.contains("already armed"), "{}", e.message);
        assert_eq!(sync.model().err().unwrap().status, sys::DAT_ERR_STATE);
        assert_eq!(sync.comm().err().unwrap().status, sys::DAT_ERR_STATE);
        sync.loss_backward(&x, Some(&y), &Loss::default())?;
        let e = sync.loss_backward(&x, Some(&y), &Loss::default()).unwrap_err();
        assert!(e.message.contains("end() first"), "{}", e.message);
        sync.end()?;
        assert!(!sync.is_armed());
        // Unarmed, backward passes accumulate freely (the earlier ones of a step).
        let accumulate = Loss { accumulate: true, ..Loss::default() };
        sync.loss_backward(&x, Some(&y), &accumulate)?;
        sync.loss_backward(&x, Some(&y), &accumulate)?;
        // A broken communicator fails begin.
        sync.comm()?.abort()?;
        assert_eq!(sync.begin(2).unwrap_err().status, sys::DAT_ERR_STATE);
        Ok(())
    }).unwrap();
    // What the closure returns comes back, its error too; the scope destroyed
    // the synchronizer, so the model takes another.
    let e = GradSync::scope(&mut comm, &mut m, None, &Default::default(), |_| -> dat::Result<()> {
        Err(dat::Error { status: sys::DAT_ERR_IO, message: "mine".into() })
    }).unwrap_err();
    assert_eq!((e.status, e.message.as_str()), (sys::DAT_ERR_IO, "mine"));
    assert_eq!(GradSync::scope(&mut comm, &mut m, None, &Default::default(), |_| Ok(7)), Ok(7));
}

#[test]
fn grad_sync_scope_destroys_it_when_the_closure_panics() {
    let c = ctx();
    let (x, y) = batch(&c);
    let mut m = Model::preset(&c, "mlp", &Default::default()).unwrap();
    let opts = GradSyncOptions { bucket_elems: 1024, ..Default::default() };
    {
        let mut comm = Comm::new_self(&c).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            GradSync::scope(&mut comm, &mut m, None, &opts, |sync| -> dat::Result<()> {
                sync.begin(0)?;
                panic!("inside the scope, armed");
            })
        }));
        assert!(r.is_err());
    } // the communicator is freed: the synchronizer must be gone from the model
    m.loss_backward(&x, Some(&y), &Loss::default()).unwrap(); // no hook fires
    c.synchronize().unwrap();
    let mut comm = Comm::new_self(&c).unwrap();
    GradSync::scope(&mut comm, &mut m, None, &opts, |sync| {
        sync.begin(1)?;
        sync.loss_backward(&x, Some(&y), &Loss::default())?;
        sync.end()
    }).unwrap();
}

#[test]
fn grad_sync_refuses_a_swapped_model_or_communicator() {
    let c = ctx();
    let (x, y) = batch(&c);
    let mut comm = Comm::new_self(&c).unwrap();
    let mut m = Model::preset(&c, "mlp", &Default::default()).unwrap();
    let mut other = Model::preset(&c, "mlp", &Default::default()).unwrap();
    let mut other_comm = Comm::new_self(&c).unwrap();
    let opts = GradSyncOptions { bucket_elems: 1024, ..Default::default() };
    let m_raw = m.as_ptr();
    GradSync::scope(&mut comm, &mut m, None, &opts, |sync| {
        std::mem::swap(sync.model()?, &mut other);
        for e in [sync.begin(0).unwrap_err(),
                  sync.loss_backward(&x, Some(&y), &Loss::default()).unwrap_err(),
                  sync.loss_backward_on_device(&x, Some(&y), &Loss::default()).unwrap_err(),
                  sync.end().unwrap_err()] {
            assert_eq!(e.status, sys::DAT_ERR_STATE);
            assert!(e.message.contains("replaced"), "{}", e.message);
        }
        assert!(!sync.is_armed());
        std::mem::swap(sync.model()?, &mut other); // back: it works again
        std::mem::swap(sync.comm()?, &mut other_comm);
        assert!(sync.begin(0).unwrap_err().message.contains("replaced"));
        std::mem::swap(sync.comm()?, &mut other_comm);
        sync.begin(0)?;
        sync.loss_backward(&x, Some(&y), &Loss::default())?;
        sync.end()
    }).unwrap();
    assert_eq!(m.as_ptr(), m_raw);

    // Left swapped: the C synchronizer is leaked, never destroyed with a model
    // that may be gone; the C model it holds can be dropped, the other used.
    GradSync::scope(&mut comm, &mut m, None, &opts, |sync| {
        std::mem::swap(sync.model()?, &mut other);
        Ok(())
    }).unwrap();
    drop(other); // the C model of the synchronizer
    m.loss_backward(&x, Some(&y), &Loss::default()).unwrap();
    GradSync::scope(&mut comm, &mut m, None, &opts, |sync| {
        sync.begin(0)?;
        sync.loss_backward(&x, Some(&y), &Loss::default())?;
        sync.end()
    }).unwrap();
}

#[test]
fn unique_id_file_and_checkpoint() {
    let dir = std::env::temp_dir().join(format!("dat-rust-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes: Vec<u8> = (0..128u8).collect();
    let id = UniqueId::from_bytes(&bytes).unwrap();
    let path = dir.join("id").to_str().unwrap().to_string();
    id.write(&path).unwrap();
    assert_eq!(UniqueId::read(&path, 1.0).unwrap().bytes(), &bytes[..]);
    if !dat::has_cuda() {
        assert_eq!(UniqueId::new().err().unwrap().status, sys::DAT_ERR_UNSUPPORTED);
    }

    let c = ctx();
    let mut m = Model::preset(&c, "mlp", &Default::default()).unwrap();
    let optim = Optimizer::for_model(&mut m, &Default::default()).unwrap();
    let ck = dir.join("ck.safetensors").to_str().unwrap().to_string();
    let pos = Position { epoch: 3, step: 7, attack_step: 9 };
    dat::save_checkpoint(&ck, &mut m, Some(&optim), pos, Some("{}")).unwrap();
    let mut o = dat::ModelOptions::default();
    o.init_seed = 99;
    let mut m2 = Model::preset(&c, "mlp", &o).unwrap();
    assert_ne!(m2.params_to_vec().unwrap(), m.params_to_vec().unwrap());
    let (p, config) = dat::load_checkpoint(&ck, &mut m2, None).unwrap();
    assert_eq!((p, config.as_str()), (pos, "{}"));
    assert_eq!(m2.params_to_vec().unwrap(), m.params_to_vec().unwrap());
    assert_eq!(dat::load_checkpoint("/nonexistent/ck", &mut m2, None).unwrap_err().status,
               sys::DAT_ERR_IO);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dataset_of_fashion_mnist() {
    let dir = "/usr/share/datasets/fashion-mnist";
    if !std::path::Path::new(dir).join("t10k-images-idx3-ubyte.gz").exists() {
        eprintln!("no Fashion-MNIST: skipped");
        return;
    }
    let c = ctx();
    let mut o = dat::DatasetOptions::default();
    o.limit = 100;
    o.batch_size = 40;
    let mut ds = Dataset::open(&c, &o, &format!("{}/t10k-images-idx3-ubyte.gz", dir),
                               Some(&format!("{}/t10k-labels-idx1-ubyte.gz", dir)), &[], &[])
        .unwrap();
    assert_eq!(ds.num_samples().unwrap(), 100);
    assert_eq!(ds.batches_per_epoch().unwrap(), 3);
    assert_eq!(ds.sample_shape().unwrap(), (1, 28, 28));
    assert_eq!(ds.num_classes().unwrap(), 10);
    let mut x = Tensor::new(&c, DType::Float32, &[40, 1, 28, 28]).unwrap();
    let mut y = Tensor::new(&c, DType::Int32, &[40]).unwrap();
    let mut counts = vec![];
    loop {
        let n = ds.next_batch(&mut x, Some(&mut y)).unwrap();
        if n == 0 {
            break;
        }
        counts.push(n);
    }
    assert_eq!(counts, vec![40, 40, 20]);
    assert_eq!(&y.to_vec::<i32>().unwrap()[20..], &[-1; 20][..], "padding rows are -1");
    assert_eq!(ds.position().unwrap(), (0, 3));
    let e = Dataset::open(&c, &o, "/usr/share/datasets/nothing/x", Some("y"), &[], &[]).err();
    assert_eq!(e.unwrap().status, sys::DAT_ERR_IO);
}

#[test]
fn evaluation_and_transfer_learning() {
    assert!((dat::eval::normal_quantile(0.975).unwrap() - 1.959963984540054).abs() < 1e-12);
    assert!((dat::eval::incbeta(1.0, 1.0, 0.3).unwrap() - 0.3).abs() < 1e-12);
    assert_eq!(dat::eval::clopper_pearson_lower(0, 10, 0.05).unwrap(), 0.0);
    assert!(dat::eval::incbeta_inv(2.0, 3.0, 1.5).is_err());
    let acc = dat::eval::certified_accuracy(&[0, 1, -1], &[0.5, 0.1, 0.0], &[0, 1, 2],
                                            &[0.0, 0.25]).unwrap();
    assert!((acc[0] - 2.0 / 3.0).abs() < 1e-12 && (acc[1] - 1.0 / 3.0).abs() < 1e-12);

    let c = ctx();
    let mut m = Model::preset(&c, "mlp", &Default::default()).unwrap();
    let mut x = Tensor::new(&c, DType::Float32, &[2, 1, 28, 28]).unwrap();
    x.fill_uniform(0.0, 1.0, 0, 0).unwrap();
    let y = Tensor::from_slice(&c, &[2], &[0i32, 1]).unwrap();
    let mut s = dat::eval::SmoothOptions::default();
    s.n0 = 10;
    s.n = 40;
    s.batch = 20;
    let (pred, radius) = dat::eval::smooth_certify(&mut m, &x, &s).unwrap();
    assert_eq!((pred.len(), radius.len()), (2, 2));
    let mut a = dat::eval::AutoAttackOptions::default();
    a.eps = 0.1;
    a.apgd_steps = 3;
    a.attacks = sys::DAT_AA_BIT(sys::DAT_AA_APGD_CE);
    let (robust, outcome) = dat::eval::autoattack(&mut m, &x, &y, &a, None).unwrap();
    assert_eq!(robust, outcome.iter().filter(|&&o| o == sys::DAT_AA_ROBUST).count() as i32);

    assert_eq!(m.num_layers().unwrap(), 3);
    let (first, count) = m.layer_segments(2).unwrap();
    assert_eq!(count, 2);
    let dir = std::env::temp_dir().join(format!("dat-rust-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors").to_str().unwrap().to_string();
    m.save(&path).unwrap();
    let mut o = dat::ModelOptions::default();
    o.num_classes = 5;
    let mut m5 = Model::preset(&c, "mlp", &o).unwrap();
    assert_eq!(m5.load(&path, false).unwrap_err().status, sys::DAT_ERR_FORMAT);
    let mut kept = vec![];
    let mut note = |name: &str, loaded: bool| {
        if !loaded {
            kept.push(name.to_string())
        }
    };
    m5.load_with(&path, false, sys::DAT_REINIT_HEAD_IF_MISMATCHED, Some(&mut note)).unwrap();
    assert_eq!(kept, vec!["fc3.weight".to_string(), "fc3.bias".to_string()]);
    let mut optim = Optimizer::for_model(&mut m5, &Default::default()).unwrap();
    optim.set_lr_scale(0, first, 0.0).unwrap();
    assert!(optim.set_lr_scale(0, 99, 1.0).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loss_on_the_device_and_step_graphs() {
    let c = ctx();
    let mut model = Model::preset(&c, "mlp", &Default::default()).unwrap();
    let mut x = Tensor::new(&c, DType::Float32, &[4, 1, 28, 28]).unwrap();
    x.fill_uniform(0.0, 1.0, 1, 0).unwrap();
    let y = Tensor::from_slice(&c, &[4], &[0i32, 1, 2, 3]).unwrap();
    let mut sum = Tensor::from_slice(&c, &[1], &[0.5f32]).unwrap();
    let objective = Loss { loss_sum: Some(&mut sum), ..Loss::default() };
    let loss = model.loss_backward(&x, Some(&y), &objective).unwrap();
    model.loss_backward_on_device(&x, Some(&y), &objective).unwrap();
    let got = sum.to_vec::<f32>().unwrap()[0];
    assert!((got - (0.5 + 2.0 * loss)).abs() <= 1e-5 * got, "{} vs {}", got, 0.5 + 2.0 * loss);
    // The CPU records no graphs; the recording's closure never runs.
    let mut ran = false;
    let e = unsafe { c.record(|| { ran = true; Ok(()) }) }.err().unwrap();
    assert_eq!(e.status, sys::DAT_ERR_UNSUPPORTED);
    assert!(!ran);
}

/// A CUDA context (the CUDA emulation of a libdat built with gpu_emulation
/// counts), or None where libdat has no CUDA backend or no device.
fn cuda_ctx() -> Option<Context> {
    if !dat::has_cuda() {
        eprintln!("libdat without CUDA: skipped");
        return None;
    }
    let mut o = dat::CtxOptions::default();
    o.device = sys::DAT_DEVICE_CUDA;
    match Context::new(&o) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("no CUDA context ({}): skipped", e);
            None
        }
    }
}

#[test]
fn step_graph_replays_and_a_panicking_step_ends_the_recording() {
    let c = match cuda_ctx() {
        Some(c) => c,
        None => return,
    };
    let mut model = Model::preset(&c, "mlp", &Default::default()).unwrap();
    let mut x = Tensor::new(&c, DType::Float32, &[4, 1, 28, 28]).unwrap();
    x.fill_uniform(0.0, 1.0, 1, 0).unwrap();
    let y = Tensor::from_slice(&c, &[4], &[0i32, 1, 2, 3]).unwrap();
    let mut sum = Tensor::new(&c, DType::Float32, &[1]).unwrap();
    let loss = model.loss_backward(&x, Some(&y), &Loss::default()).unwrap(); // sizes scratch

    // A panic inside the step: the recording ends while unwinding.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let step = || -> dat::Result<()> {
            model.loss_backward_on_device(&x, Some(&y), &Loss::default())?;
            panic!("inside the step")
        };
        // Safety: nothing is launched.
        unsafe { c.record(step) }.map(|_| ())
    }));
    assert!(r.is_err());

    // Safety: model, x, y and sum outlive the graph and keep their buffers.
    let mut graph = unsafe {
        c.record(|| {
            let objective = Loss { loss_sum: Some(&mut sum), ..Loss::default() };
            model.loss_backward_on_device(&x, Some(&y), &objective)
        })
    }.expect("the context is not left recording");
    graph.launch().unwrap();
    graph.launch().unwrap();
    c.synchronize().unwrap();
    drop(graph);
    let got = sum.to_vec::<f32>().unwrap()[0];
    assert!((got - 2.0 * loss).abs() <= 1e-4 * got, "{} vs {}", got, 2.0 * loss);
}

#[test]
fn context_log_goes_to_a_closure_and_raw_log_fn_is_refused() {
    use std::sync::{Arc, Mutex};
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut o = dat::CtxOptions::default();
    o.log_level = sys::DAT_LOG_DEBUG;
    let sink = Arc::clone(&lines);
    let c = Context::with_log(&o, move |level, line| {
        sink.lock().unwrap().push((level, line.to_string()))
    }).unwrap();
    assert!(!lines.lock().unwrap().is_empty(), "dat_ctx_create logs at DAT_LOG_DEBUG");
    let moved = vec![c]; // the closure is boxed: moving the context keeps log_user valid
    drop(moved);

    unsafe extern "C" fn raw_log(_: i32, _: *const std::os::raw::c_char,
                                 _: *mut std::os::raw::c_void) {}
    o.log_fn = Some(raw_log);
    let e = Context::new(&o).err().unwrap();
    assert_eq!(e.status, sys::DAT_ERR_INVALID_ARG);
    assert!(e.message.contains("Context::with_log"), "{}", e.message);
    // Safety: raw_log never unwinds and ignores its user pointer.
    unsafe { Context::with_raw_log(&o) }.unwrap();
}

#[test]
fn a_panicking_log_closure_does_not_unwind_through_c() {
    let mut o = dat::CtxOptions::default();
    o.log_level = sys::DAT_LOG_DEBUG;
    let r = std::panic::catch_unwind(|| {
        Context::with_log(&o, |_, _| panic!("from the log closure")).map(|_| ())
    });
    let payload = r.expect_err("the panic is raised again in Rust");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"from the log closure"));
    // Nothing is left pending on this thread.
    assert!(Context::cpu(0, 1).is_ok());
}

#[test]
fn a_panicking_load_report_does_not_unwind_through_c() {
    let c = ctx();
    let mut m = Model::preset(&c, "mlp", &Default::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("dat-rust-panic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors").to_str().unwrap().to_string();
    m.save(&path).unwrap();
    let mut calls = 0;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut f = |_: &str, _: bool| {
            calls += 1;
            panic!("from the callback")
        };
        m.load_with(&path, false, sys::DAT_REINIT_HEAD_NEVER, Some(&mut f))
    }));
    let payload = r.expect_err("the panic is raised again after dat_model_load");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"from the callback"));
    assert_eq!(calls, 1, "the report stops at its panic");
    m.load(&path, false).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lengths_are_checked() {
    let c = ctx();
    let mut b = ModelBuilder::new(&c, 3, 2, 2).unwrap();
    let e = b.set_normalization(&[0.5], &[0.25]).unwrap_err();
    assert_eq!(e.status, sys::DAT_ERR_INVALID_ARG);
    assert!(e.message.contains("one value per input channel"), "{}", e.message);
    b.set_normalization(&[0.5; 3], &[0.25; 3]).unwrap();
}
