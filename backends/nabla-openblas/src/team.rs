//! A fixed team of threads for the element-wise kernels: a pass large enough to pay for waking a
//! thread (an Adam update over a 784 × 512 layer, bias + activation over a 1024 × 4096 batch) is
//! cut into one contiguous part per thread; a small one stays on the calling thread.
//!
//! Why not rayon: a job handed to rayon's pool from a thread outside it goes through an injector
//! queue that allocates a block every 63 hand-offs, and a training step must not allocate. Here a
//! hand-off is a mutex, two condition variables and a pointer. After a job, workers (and the caller
//! waiting for them) spin for [`SPIN`] before they sleep: a step's jobs come tens of microseconds
//! apart (the GEMMs and passes of one layer after another), and waking a sleeping thread costs
//! ~14 µs each time; a worker idle for longer sleeps. (Where OpenBLAS keeps its own threads, a
//! worker spinning after an element-wise pass may hold a core from them for those 50 µs.)

use std::any::Any;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker (or a waiting caller) polls before it sleeps.
const SPIN: Duration = Duration::from_micros(50);

/// Polls `ready` for up to [`SPIN`]; whether it became true.
fn spin_until(ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > SPIN {
            return ready();
        }
    }
}

/// A borrowed job with its lifetime erased: part `i` of `parts` is `(*f)(i)`. [`Team::run`]
/// does not return before every part has finished, so the closure outlives every use.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync + 'static),
    parts: usize,
}

// SAFETY: the closure behind `f` is `Sync`, and `Team::run` keeps it alive while workers use it.
unsafe impl Send for Job {}

/// What the caller and the workers share, under one mutex.
struct State {
    /// Bumped for every job; a worker runs a job once, when it sees a new generation.
    generation: u64,
    job: Option<Job>,
    /// Worker parts of the current job not finished yet.
    pending: usize,
    /// A worker's part panicked (a bug: the kernels index checked slices).
    panic: Option<Box<dyn Any + Send>>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The generation of the last job posted (read by spinning workers without the lock).
    posted: AtomicU64,
    /// Worker parts of the current job not finished yet (read by the spinning caller).
    unfinished: AtomicUsize,
    /// Signals a new job (or stop) to the workers.
    start: Condvar,
    /// Signals the caller that the last worker part finished.
    done: Condvar,
}

/// The caller plus `size − 1` worker threads.
pub(crate) struct Team {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// One job at a time (a backend may be shared by threads).
    busy: Mutex<()>,
}

/// Locks, ignoring poisoning: the state stays consistent because no code panics while holding
/// the lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Team {
    /// A team of `size` threads counting the caller (`size − 1` are spawned).
    pub(crate) fn new(size: usize) -> std::io::Result<Team> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { generation: 0, job: None, pending: 0, panic: None, stop: false }),
            posted: AtomicU64::new(0),
            unfinished: AtomicUsize::new(0),
            start: Condvar::new(),
            done: Condvar::new(),
        });
        let mut team = Team { shared, workers: Vec::new(), busy: Mutex::new(()) };
        for index in 1..size.max(1) {
            let shared = Arc::clone(&team.shared);
            let handle = std::thread::Builder::new()
                .name(format!("nabla-elementwise-{index}"))
                .spawn(move || work(&shared, index))?;
            team.workers.push(handle);
        }
        Ok(team)
    }

    /// The number of threads, the caller's included.
    pub(crate) fn size(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(0)`, …, `f(parts − 1)`, part 0 on this thread and the others on the workers,
    /// and returns when all have finished (`parts` is capped at [`Team::size`]).
    pub(crate) fn run(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        let parts = parts.clamp(1, self.size());
        if parts == 1 {
            return f(0);
        }
        let _one_job_at_a_time = lock(&self.busy);
        // SAFETY: only the lifetime changes; this function waits below until no worker uses `f`.
        let erased = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const (dyn Fn(usize) + Sync + 'static)>(f)
        };
        let generation = {
            let mut s = lock(&self.shared.state);
            s.job = Some(Job { f: erased, parts });
            s.pending = parts - 1;
            s.generation += 1;
            self.shared.unfinished.store(parts - 1, Ordering::Release);
            s.generation
        };
        self.shared.posted.store(generation, Ordering::Release);
        self.shared.start.notify_all();
        // Even if part 0 panics, the workers must finish before `f` goes out of scope.
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        // Workers decrement `unfinished` after `pending`, under the lock: once it is 0 the loop
        // below finds `pending` 0 and does not sleep.
        spin_until(|| self.shared.unfinished.load(Ordering::Acquire) == 0);
        let mut s = lock(&self.shared.state);
        while s.pending > 0 {
            s = self.shared.done.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.job = None;
        let theirs = s.panic.take();
        drop(s);
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if let Some(p) = theirs {
            resume_unwind(p);
        }
    }

    /// Cuts `0..len` into contiguous ranges of at least `min_len` elements (and multiples of
    /// `align`, but for the last), at most one per thread, and calls `f(range, parts)` for each,
    /// where `parts` are the sub-slices `m[range]` of `muts`, each handed to exactly one call.
    /// Every slice of `muts` must hold at least `len` elements.
    pub(crate) fn split_mut<E: Send, const N: usize>(
        &self,
        len: usize,
        align: usize,
        min_len: usize,
        muts: [&mut [E]; N],
        f: impl Fn(Range<usize>, [&mut [E]; N]) + Sync,
    ) {
        assert!(muts.iter().all(|m| m.len() >= len), "split_mut: a slice is shorter than {len}");
        let parts = (len / min_len.max(1)).clamp(1, self.size());
        if parts == 1 {
            return f(0..len, muts.map(|m| &mut m[..len]));
        }
        let chunk = len.div_ceil(parts).next_multiple_of(align.max(1));
        let parts = len.div_ceil(chunk);
        let bases = muts.map(|m| Base(m.as_mut_ptr()));
        self.run(parts, &|i| {
            let range = i * chunk..((i + 1) * chunk).min(len);
            // SAFETY: the ranges of different parts are disjoint and within every slice (checked
            // above), and the borrows in `muts` last until `run` has returned.
            let parts = bases.map(|b| unsafe { std::slice::from_raw_parts_mut(b.0.add(range.start), range.len()) });
            f(range, parts)
        });
    }
}

/// The start of a slice that [`Team::split_mut`] cuts into disjoint parts for several threads.
struct Base<E>(*mut E);

// A pointer copies whatever it points to (a derive would ask for `E: Copy`).
impl<E> Clone for Base<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for Base<E> {}

// SAFETY: each thread only touches its own disjoint part of the slice, of `Send` elements.
unsafe impl<E: Send> Sync for Base<E> {}

/// A worker's life: wait for a new job, run its part if it has one, report, repeat until stop.
fn work(shared: &Shared, index: usize) {
    let mut seen = 0;
    loop {
        // A job posted soon after the last is taken without sleeping.
        spin_until(|| shared.posted.load(Ordering::Acquire) != seen);
        let job = {
            let mut s = lock(&shared.state);
            while s.generation == seen && !s.stop {
                s = shared.start.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.stop {
                return;
            }
            seen = s.generation;
            s.job
        };
        let Some(job) = job.filter(|j| index < j.parts) else { continue };
        // SAFETY: `run` keeps the closure alive until `pending` is 0, which needs this part.
        let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.f)(index) }));
        let mut s = lock(&shared.state);
        if let Err(p) = result {
            s.panic.get_or_insert(p);
        }
        s.pending -= 1;
        if s.pending == 0 {
            shared.done.notify_one();
        }
        shared.unfinished.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.start.notify_all();
        for w in self.workers.drain(..) {
            // A worker only ends by returning (parts are caught), so join cannot fail.
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team").field("size", &self.size()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_mut_covers_every_element_once_in_aligned_parts() {
        for size in [1, 2, 3] {
            let team = Team::new(size).unwrap();
            for (len, align, min_len) in [(0, 1, 1), (1, 1, 1), (17, 4, 1), (1000, 8, 100), (1000, 1, 600), (7, 16, 1)]
            {
                let mut x = vec![0u32; len + 3];
                let mut y = vec![0u32; len];
                team.split_mut(len, align, min_len, [&mut x[..], &mut y[..]], |r, [x, y]| {
                    assert!(r.start % align == 0, "part starts at {}", r.start);
                    assert!(r.len() >= min_len.min(len) || r.end == len);
                    for (k, (x, y)) in r.zip(x.iter_mut().zip(y)) {
                        *x += k as u32 + 1;
                        *y += 1;
                    }
                });
                assert!(x[..len].iter().enumerate().all(|(k, &v)| v == k as u32 + 1), "size {size}, len {len}");
                assert!(x[len..].iter().all(|&v| v == 0));
                assert!(y.iter().all(|&v| v == 1));
            }
        }
    }

    #[test]
    fn split_mut_uses_one_part_per_thread_when_large_enough() {
        let team = Team::new(3).unwrap();
        let mut x = vec![0usize; 3000];
        let threads = Mutex::new(Vec::new());
        team.split_mut(3000, 1, 1000, [&mut x[..]], |r, [x]| {
            x.fill(r.start);
            lock(&threads).push(std::thread::current().name().map(String::from));
        });
        assert_eq!(x[0], 0);
        assert_eq!(x[1000], 1000);
        assert_eq!(x[2999], 2000);
        let names = threads.into_inner().unwrap();
        assert_eq!(names.len(), 3);
        for worker in ["nabla-elementwise-1", "nabla-elementwise-2"] {
            assert!(names.iter().any(|n| n.as_deref() == Some(worker)), "{worker} ran no part: {names:?}");
        }
    }

    #[test]
    fn a_panicking_part_reaches_the_caller_and_the_team_still_works() {
        let team = Team::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| team.run(2, &|i| assert_ne!(i, 1, "part one fails"))));
        assert!(r.is_err());
        let hits = Mutex::new(0);
        team.run(2, &|_| *lock(&hits) += 1);
        assert_eq!(*lock(&hits), 2);
    }
}
