//! MPI as nabla's [`Collective`] (feature `mpi`, through the `mpi` crate, rsmpi): the job's
//! ranks and world size come from the launcher (`mpirun`, `srun`), and gradients are summed
//! with `MPI_Allreduce`.
//!
//! A process started without a launcher does not initialise MPI at all and runs as a world of
//! one, unchanged ([`World::from_launcher`] returns `None`).

use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use nabla_core::distributed::{Collective, NextPiece};
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

impl World {
    /// The pieced sum of [`Collective::sum_pieces_f32`] with MPI's non-blocking all-reduce:
    /// piece `i`'s `MPI_Iallreduce` starts as soon as `next` has handed it over, and the pending
    /// ones are tested (OpenMPI progresses them only inside MPI calls) after each piece. The
    /// last piece, with nothing left to overlap, takes the blocking `MPI_Allreduce` (OpenMPI's
    /// tuned one: a 2 MB bucket alone took 0.52 ms blocking against 0.78 ms non-blocking here).
    /// All are complete when this returns, on errors too.
    fn sum_pieces<'a, T: Equivalence>(&self, count: usize, next: NextPiece<'_, 'a, T>) -> Result<()> {
        mpi::request::multiple_scope(count, |scope, pending| {
            let mut done = Vec::with_capacity(count);
            for i in 0..count {
                let piece = next(i).and_then(|p| lengths("all_reduce", p.send.len(), p.recv.len()).map(|()| p));
                let piece = match piece {
                    Ok(piece) => piece,
                    Err(e) => {
                        pending.wait_all(&mut done);
                        return Err(e);
                    }
                };
                if i + 1 == count {
                    self.world.all_reduce_into(piece.send, piece.recv, SystemOperation::sum());
                } else {
                    pending.add(self.world.immediate_all_reduce_into(
                        scope,
                        piece.send,
                        piece.recv,
                        SystemOperation::sum(),
                    ));
                    pending.test_some(&mut done);
                }
            }
            pending.wait_all(&mut done);
            Ok(())
        })
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

    fn sum_pieces_f32<'a>(&self, count: usize, next: NextPiece<'_, 'a, f32>) -> Result<()> {
        self.sum_pieces(count, next)
    }

    fn sum_pieces_f64<'a>(&self, count: usize, next: NextPiece<'_, 'a, f64>) -> Result<()> {
        self.sum_pieces(count, next)
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
