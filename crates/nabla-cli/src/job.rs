//! The job a `nabla` process belongs to: one rank of an MPI job when a launcher (`mpirun`,
//! `srun`) started it and the binary has the `mpi` feature, else a world of one.
//!
//! Only rank 0 prints progress and writes files; an error on any rank ends every rank.

use std::process::ExitCode;
#[cfg(feature = "mpi")]
use std::rc::Rc;

use nabla::distributed::Collective;
use nabla::{Error, Result};

/// This process's place in the job.
pub struct Job {
    #[cfg(feature = "mpi")]
    world: Option<Rc<nabla::mpi::World>>,
}

impl Job {
    /// Joins the launcher's job (initialising MPI), or runs alone. A build without MPI started
    /// as one of several ranks is an error, before any rank trains or writes anything.
    pub fn start() -> Result<Job> {
        #[cfg(feature = "mpi")]
        {
            Ok(Job { world: nabla::mpi::World::from_launcher()?.map(Rc::new) })
        }
        #[cfg(not(feature = "mpi"))]
        match nabla::distributed::launcher() {
            Some(Some(n)) if n > 1 => Err(Error::Unavailable {
                backend: "mpi".into(),
                reason: format!(
                    "this process is one of {n} ranks, but this nabla was built without MPI: every rank would \
                     train alone; rebuild with `cargo build --release -p nabla-cli --features mpi`"
                ),
            }),
            _ => Ok(Job {}),
        }
    }

    /// This process's rank (0 alone).
    pub fn rank(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            return w.rank();
        }
        0
    }

    /// The number of ranks (1 alone).
    pub fn size(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            return w.size();
        }
        1
    }

    /// Whether this process prints and writes (rank 0).
    pub fn primary(&self) -> bool {
        self.rank() == 0
    }

    /// The communicator for the trainer, when there are several ranks.
    pub fn collective(&self) -> Option<Box<dyn Collective>> {
        #[cfg(feature = "mpi")]
        if let Some(w) = self.world.as_ref().filter(|w| w.size() > 1) {
            return Some(Box::new(w.clone()));
        }
        None
    }

    /// Reports `e` and ends: alone, with the exit code; in a job of several ranks, by ending
    /// every rank (`MPI_Abort`), so that none waits for this one in a collective.
    pub fn fail(&self, e: &Error, code: u8) -> ExitCode {
        #[cfg(feature = "mpi")]
        if let Some(w) = self.world.as_ref().filter(|w| w.size() > 1) {
            eprintln!("error (rank {} of {}): {e}", w.rank(), w.size());
            w.abort(i32::from(code));
        }
        eprintln!("error: {e}");
        ExitCode::from(code)
    }
}

/// What `nabla backends` says about MPI and NCCL.
pub fn describe() -> String {
    let compiled = if cfg!(feature = "mpi") { "compiled in" } else { "not compiled in (feature `mpi`)" };
    let mpi = match nabla::distributed::launcher() {
        Some(Some(n)) => format!("MPI {compiled}; started by a launcher as one of {n} ranks"),
        Some(None) => format!("MPI {compiled}; started by a launcher"),
        None => format!("MPI {compiled}; no launcher: a world of one"),
    };
    format!("{mpi}; {}", nccl())
}

/// Whether CUDA gradients are summed by NCCL, and whether it loads here.
fn nccl() -> String {
    #[cfg(feature = "nccl")]
    return match nabla::cuda::nccl::check_library() {
        Ok(()) => "NCCL compiled in and found (CUDA gradients summed on the GPUs)".into(),
        Err(e) => format!("NCCL compiled in, not usable: {e}"),
    };
    #[cfg(not(feature = "nccl"))]
    "NCCL not compiled in (feature `nccl`; CUDA gradients go through the host)".into()
}
