//! NCCL for data-parallel runs (feature `nccl`): each rank's CUDA backend joins one NCCL
//! communicator over the job's ranks, its unique id made by rank 0 and broadcast through the
//! job's host communicator (MPI), and the gradients are summed on the devices, in place, a
//! group call per layer as backward produces it: no copy through the host. NCCL runs on a stream
//! of its own, so that a layer's sum overlaps the backward of the layers below (PyTorch DDP's
//! scheme); two events order it against the backend's stream: each sum waits for the work
//! queued before it (the gradient it sums), and [`Communicator::wait`] makes the backend's later
//! work (the update) wait for every sum.
//!
//! cudarc loads NCCL at run time by the names `libnccl.so` (the development package's link)
//! and a few versioned ones, not `libnccl.so.2`, the only name of runtime-only installs;
//! [`check_library`] says which of the two is missing instead of letting cudarc panic.

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaEvent, CudaSlice, CudaStream};
use cudarc::nccl::{Comm, Id, NcclType, ReduceOp, group_end, group_start};
use nabla_core::distributed::Collective;
use nabla_core::{Error, Result};

/// The element types NCCL sums (f32, f64).
pub trait Reducible: NcclType {}
impl<T: NcclType> Reducible for T {}

/// Whether NCCL can be loaded: `Ok` when cudarc finds it, else an [`Error::Unavailable`] that
/// says what to install (or link) on this machine.
pub fn check_library() -> Result<()> {
    // SAFETY: loads the library by name (running its initialisers), as every use of NCCL would.
    let found = unsafe { cudarc::nccl::sys::is_culib_present() };
    // SAFETY: as above; the handle is dropped at once.
    let runtime_only = !found && unsafe { libloading::Library::new("libnccl.so.2") }.is_ok();
    missing(found, runtime_only).map_or(Ok(()), |reason| Err(unavailable(reason)))
}

/// Why NCCL cannot be used, from whether cudarc's names load and whether `libnccl.so.2` does.
fn missing(found: bool, runtime_only: bool) -> Option<String> {
    match (found, runtime_only) {
        (true, _) => None,
        (false, true) => Some(
            "NCCL is installed as libnccl.so.2 only, and cudarc loads it as libnccl.so: install the development \
             package (Debian/Ubuntu `libnccl-dev`, pip `nvidia-nccl-cu13` provides the .so.2 only), or link \
             libnccl.so to libnccl.so.2 in a folder on LD_LIBRARY_PATH"
                .into(),
        ),
        (false, false) => Some(
            "NCCL (libnccl.so) was not found: install NVIDIA's NCCL (Debian/Ubuntu `libnccl2 libnccl-dev`) or put \
             its lib folder on LD_LIBRARY_PATH; or build nabla without the `nccl` feature to sum the gradients \
             through the host over MPI"
                .into(),
        ),
    }
}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::Unavailable { backend: "cuda (NCCL)".into(), reason: reason.into() }
}

fn nccl_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::backend("cuda (NCCL)", format!("{what}: {e:?}"))
}

/// One rank's NCCL communicator and what orders its stream against the backend's.
pub(crate) struct Communicator(Mutex<Streams>);

struct Streams {
    /// The communicator, on a stream of its own.
    nccl: Comm,
    /// The backend's stream.
    backend: Arc<CudaStream>,
    /// Recorded on the backend's stream before each sum, which NCCL's stream waits for.
    queued: CudaEvent,
    /// Recorded on NCCL's stream after the sums, which the backend's stream waits for.
    summed: CudaEvent,
}

// SAFETY: an NCCL communicator is a handle that any thread may use, one call at a time (NCCL
// is not thread-safe per communicator); the mutex makes every use exclusive.
unsafe impl Send for Communicator {}
// SAFETY: as above: shared references reach the communicator only through the mutex.
unsafe impl Sync for Communicator {}

impl Communicator {
    /// Joins the job of `comm`'s ranks on `stream`'s device, on a stream forked from it: rank 0
    /// makes NCCL's unique id and `comm` broadcasts it (its 128 bytes as exact f64 values).
    /// NCCL allows one rank per GPU.
    pub(crate) fn join(stream: Arc<CudaStream>, comm: &dyn Collective) -> Result<Communicator> {
        check_library()?;
        let mut bytes = [0.0_f64; 128];
        if comm.rank() == 0 {
            let id = Id::new().map_err(|e| nccl_error("making the unique id", e))?;
            bytes.iter_mut().zip(id.internal()).for_each(|(b, &c)| *b = f64::from(c as u8));
        }
        comm.broadcast_f64(&mut bytes)?;
        let id = Id::uninit(bytes.map(|b| b as u8 as std::ffi::c_char));
        let sums = stream.fork().map_err(|e| nccl_error("creating NCCL's stream", e))?;
        let event = || stream.context().new_event(None).map_err(|e| nccl_error("creating an event for NCCL", e));
        let (queued, summed) = (event()?, event()?);
        let nccl = Comm::from_rank(sums, comm.rank(), comm.size(), id).map_err(|e| {
            nccl_error(
                &format!(
                    "joining rank {} of {} (NCCL allows one rank per GPU: start at most as many ranks per node as it \
                     has GPUs; each takes the GPU of its local rank)",
                    comm.rank(),
                    comm.size()
                ),
                e,
            )
        })?;
        Ok(Communicator(Mutex::new(Streams { nccl, backend: stream, queued, summed })))
    }

    fn streams(&self) -> Result<std::sync::MutexGuard<'_, Streams>> {
        self.0.lock().map_err(|_| nccl_error("the communicator", "poisoned by a panic"))
    }

    /// Starts `b ← Σ_ranks b` in place for every buffer, one group call on NCCL's stream, after
    /// the work queued on the backend's stream so far. Returns without waiting.
    pub(crate) fn sum<'a, E: Reducible + 'a>(&self, bufs: impl Iterator<Item = &'a mut CudaSlice<E>>) -> Result<()> {
        let s = self.streams()?;
        let ordered = s.queued.record(&s.backend).and_then(|()| s.nccl.stream().wait(&s.queued));
        ordered.map_err(|e| nccl_error("ordering NCCL's stream after the backend's", e))?;
        group_start().map_err(|e| nccl_error("ncclGroupStart", e))?;
        let mut bufs = bufs;
        let queued = bufs.try_for_each(|b| {
            s.nccl.all_reduce_in_place(b, &ReduceOp::Sum).map(|_| ()).map_err(|e| nccl_error("ncclAllReduce", e))
        });
        let ended = group_end().map(|_| ()).map_err(|e| nccl_error("ncclGroupEnd", e));
        queued.and(ended)
    }

    /// Makes the work queued on the backend's stream from now on wait for every sum started.
    /// Should the device refuse that, the host waits for the sums instead (no later work may
    /// touch a buffer being summed) and the refusal is returned.
    pub(crate) fn wait(&self) -> Result<()> {
        let s = self.streams()?;
        let nccl = s.nccl.stream();
        let ordered = s.summed.record(&nccl).and_then(|()| s.backend.wait(&s.summed));
        ordered.map_err(|e| {
            let unordered = nccl_error("ordering the backend's stream after NCCL's", e);
            nccl.synchronize().map_or_else(|e| nccl_error("waiting for NCCL's sums", e), |()| unordered)
        })
    }

    /// Blocks the host until every sum started is done.
    pub(crate) fn synchronize(&self) -> Result<()> {
        self.streams()?.nccl.stream().synchronize().map_err(|e| nccl_error("waiting for NCCL's sums", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_nccl_says_what_to_install() {
        assert_eq!(missing(true, false), None);
        let runtime_only = missing(false, true).unwrap();
        assert!(runtime_only.contains("libnccl.so.2 only") && runtime_only.contains("libnccl-dev"), "{runtime_only}");
        let absent = missing(false, false).unwrap();
        assert!(absent.contains("libnccl.so") && absent.contains("without the `nccl` feature"), "{absent}");
    }

    /// On a machine without NCCL (CI, this project's development machines) the check is an
    /// error, not cudarc's panic.
    #[test]
    fn the_library_check_never_panics() {
        match check_library() {
            Ok(()) => eprintln!("NCCL is installed here"),
            Err(e) => assert!(matches!(e, Error::Unavailable { .. }) && e.to_string().contains("NCCL"), "{e}"),
        }
    }
}
