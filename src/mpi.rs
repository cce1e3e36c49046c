//! MPI as nabla's [`Collective`] (feature `mpi`, through the `mpi` crate, rsmpi): the job's
//! ranks and world size come from the launcher (`mpirun`, `srun`), and gradients are summed
//! with `MPI_Allreduce`.
//!
//! A process started without a launcher does not initialise MPI at all and runs as a world of
//! one, unchanged ([`World::from_launcher`] returns `None`).

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use nabla_core::distributed::Collective;
use nabla_core::{Error, Result};

/// The job's `MPI_COMM_WORLD`, owning MPI's initialisation (finalised when dropped).
pub struct World {
    world: SimpleCommunicator,
    // Dropped last: `MPI_Finalize` after the communicator is gone.
    _universe: Universe,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World").field("rank", &self.world.rank()).field("size", &self.world.size()).finish()
    }
}

impl World {
    /// Initialises MPI when a launcher started this process; `None` otherwise (a world of one).
    pub fn from_launcher() -> Result<Option<World>> {
        if nabla_core::distributed::launcher().is_none() {
            return Ok(None);
        }
        let universe = mpi::initialize().ok_or_else(|| Error::Unavailable {
            backend: "mpi".into(),
            reason: "MPI could not be initialised (was it already, or is the launcher's MPI another than the one \
                     nabla was built with?)"
                .into(),
        })?;
        Ok(Some(World { world: universe.world(), _universe: universe }))
    }

    /// Ends every rank of the job with `code` (after an error on this rank, so that no other rank
    /// waits for it in a collective).
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

fn lengths(op: &'static str, send: usize, recv: usize) -> Result<()> {
    if send == recv {
        return Ok(());
    }
    Err(Error::shape(op, format!("the send buffer has {send} values, the receive buffer {recv}")))
}

impl Collective for World {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn sum_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        lengths("all_reduce", send.len(), recv.len())?;
        self.world.all_reduce_into(send, recv, SystemOperation::sum());
        Ok(())
    }

    fn sum_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
        lengths("all_reduce", send.len(), recv.len())?;
        self.world.all_reduce_into(send, recv, SystemOperation::sum());
        Ok(())
    }

    fn broadcast_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.world.process_at_rank(0).broadcast_into(buf);
        Ok(())
    }

    fn broadcast_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.world.process_at_rank(0).broadcast_into(buf);
        Ok(())
    }
}
