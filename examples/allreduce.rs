//! The all-reduce's latency α and bandwidth β on this machine's MPI (loopback between ranks):
//! median time of `MPI_Allreduce` (sum, f32) for messages of 4 KB … 100 MB, and the fit
//! `t(N) ≈ 2(p−1)·α + 2(p−1)/p · N / β` (the ring all-reduce's cost).
//!
//! ```sh
//! cargo build --release --features mpi --example allreduce
//! mpirun -n 2 --bind-to core target/release/examples/allreduce
//! ```

use std::time::Instant;

use nabla::distributed::Collective;
use nabla::mpi::World;

fn main() -> nabla::Result<()> {
    let Some(world) = World::from_launcher()? else {
        eprintln!("run it under mpirun: it measures communication between ranks");
        return Ok(());
    };
    let (rank, p) = (world.rank(), world.size() as f64);
    let mut rows = Vec::new();
    for bytes in [4usize << 10, 64 << 10, 1 << 20, 8 << 20, 32 << 20, 100 << 20] {
        let n = bytes / 4;
        let send = vec![1.0f32; n];
        let mut recv = vec![0.0f32; n];
        let reps = (200 * (1 << 20) / bytes).clamp(5, 2000);
        world.sum_f32(&send, &mut recv)?;
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let started = Instant::now();
                world.sum_f32(&send, &mut recv).map(|_| started.elapsed().as_secs_f64())
            })
            .collect::<nabla::Result<_>>()?;
        times.sort_by(f64::total_cmp);
        rows.push((bytes as f64, times[times.len() / 2]));
    }
    if rank == 0 {
        // Least squares of t = a + b·N over the sizes: α = a / 2(p−1), β = 2(p−1)/p / b.
        let k = rows.len() as f64;
        let (sx, sy) = (rows.iter().map(|r| r.0).sum::<f64>(), rows.iter().map(|r| r.1).sum::<f64>());
        let sxx = rows.iter().map(|r| r.0 * r.0).sum::<f64>();
        let sxy = rows.iter().map(|r| r.0 * r.1).sum::<f64>();
        let b = (k * sxy - sx * sy) / (k * sxx - sx * sx);
        let a = rows[0].1 - b * rows[0].0; // the smallest message sets the latency
        println!("| bytes | median µs | GB/s |\n|---|---|---|");
        for (bytes, t) in &rows {
            println!("| {bytes:.0} | {:.1} | {:.2} |", t * 1e6, bytes / t / 1e9);
        }
        let alpha = a.max(0.0) / (2.0 * (p - 1.0));
        let beta = 2.0 * (p - 1.0) / p / b;
        println!("fit: α = {:.2} µs, β = {:.2} GB/s ({p} ranks)", alpha * 1e6, beta / 1e9);
    }
    Ok(())
}
