//! Output made on several threads and written in its order.
//!
//! `-a --json` on a busy host writes hundreds of megabytes, and making
//! that text costs more than anything else lsport does after the dumps.
//! The items are cut into chunks; worker threads render chunks into
//! buffers of their own, and the calling thread writes the buffers in
//! order. The buffers are few and reused, so memory stays at a few
//! chunks, however long the output.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread;

/// Items per chunk: large enough that handing a chunk over costs little
/// beside rendering it, small enough that a few buffers stay small.
const CHUNK: usize = 1024;

/// At most this many threads render: beyond it the single writer is the
/// bottleneck.
const MAX_THREADS: usize = 4;

/// Renders `items` into `sink`, in their order. `render` writes one
/// chunk into a buffer; it is given the chunk's index (0 for the first),
/// and a state made once per thread by `new_state` (a cache, say).
/// Fewer items than two chunks, or one CPU, are rendered on this thread.
pub fn write<T, S, E>(
    items: &[T],
    new_state: impl Fn() -> S + Sync,
    render: impl Fn(&mut S, usize, &[T], &mut Vec<u8>) -> Result<(), E> + Sync,
    sink: &mut dyn Write,
) -> Result<(), E>
where
    T: Sync,
    E: From<io::Error> + Send,
{
    let threads = thread_count().min(items.len().div_ceil(CHUNK));
    if threads <= 1 {
        return write_here(items, &new_state, &render, sink);
    }
    let work = Work {
        items,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    };
    // A few buffers per thread: enough for the writer never to wait on a
    // renderer that waits for a buffer.
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..threads * 2 {
        let _ = free_tx.send(Vec::new());
    }
    let free_rx = Mutex::new(free_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Result<Vec<u8>, E>)>();
    thread::scope(|scope| {
        let started = (0..threads)
            .filter(|_| {
                let done_tx = done_tx.clone();
                let (work, free_rx, new_state, render) = (&work, &free_rx, &new_state, &render);
                thread::Builder::new()
                    .spawn_scoped(scope, move || {
                        work.render_chunks(free_rx, &done_tx, new_state, render)
                    })
                    .is_ok()
            })
            .count();
        drop(done_tx);
        let result = if started == 0 {
            write_here(items, &new_state, &render, sink)
        } else {
            write_in_order(&done_rx, &free_tx, work.chunks(), sink)
        };
        // On an error the workers stop at their next chunk; the scope
        // then waits for them.
        work.stop.store(true, Ordering::Relaxed);
        drop(free_tx);
        result
    })
}

/// Folds `items`, chunk by chunk, into one state per thread (made by
/// `new_state`), and returns the states: what is measured before the
/// rendering (a table's column widths). Order does not matter to it.
pub fn fold<T, S>(
    items: &[T],
    new_state: impl Fn() -> S + Sync,
    fold: impl Fn(&mut S, &[T]) + Sync,
) -> Vec<S>
where
    T: Sync,
    S: Send,
{
    let chunks = items.len().div_ceil(CHUNK);
    let threads = thread_count().min(chunks);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut state = new_state();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= chunks {
                return state;
            }
            let start = index * CHUNK;
            fold(&mut state, &items[start..items.len().min(start + CHUNK)]);
        }
    };
    if threads <= 1 {
        return vec![work()];
    }
    thread::scope(|scope| {
        let others: Vec<_> = (1..threads)
            .filter_map(|_| thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        // This thread works too; what a worker that panicked left is
        // folded again by no one, so its panic is passed on.
        let mut states = vec![work()];
        for other in others {
            match other.join() {
                Ok(state) => states.push(state),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        states
    })
}

/// Renders and writes chunk after chunk on the calling thread.
fn write_here<T, S, E: From<io::Error>>(
    items: &[T],
    new_state: &impl Fn() -> S,
    render: &impl Fn(&mut S, usize, &[T], &mut Vec<u8>) -> Result<(), E>,
    sink: &mut dyn Write,
) -> Result<(), E> {
    let mut state = new_state();
    let mut buffer = Vec::new();
    for (index, chunk) in items.chunks(CHUNK).enumerate() {
        buffer.clear();
        render(&mut state, index, chunk, &mut buffer)?;
        sink.write_all(&buffer)?;
    }
    Ok(())
}

/// Writes the rendered chunks as they come, each in its turn, and hands
/// their buffers back.
fn write_in_order<E: From<io::Error>>(
    done: &mpsc::Receiver<(usize, Result<Vec<u8>, E>)>,
    free: &mpsc::Sender<Vec<u8>>,
    chunks: usize,
    sink: &mut dyn Write,
) -> Result<(), E> {
    let mut waiting: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut next = 0;
    while next < chunks {
        let buffer = match waiting.remove(&next) {
            Some(buffer) => buffer,
            None => {
                let Ok((index, rendered)) = done.recv() else {
                    // Every worker ended early: only a panic does that.
                    return Err(io::Error::other("a rendering thread stopped").into());
                };
                waiting.insert(index, rendered?);
                continue;
            }
        };
        sink.write_all(&buffer)?;
        let _ = free.send(buffer);
        next += 1;
    }
    Ok(())
}

/// The chunks to render, shared by the workers.
struct Work<'a, T> {
    items: &'a [T],
    /// The index of the next chunk to render.
    next: AtomicUsize,
    /// Set when the writer gave up: the workers end.
    stop: AtomicBool,
}

impl<T> Work<'_, T> {
    fn chunks(&self) -> usize {
        self.items.len().div_ceil(CHUNK)
    }

    /// One worker: takes a free buffer, then the next chunk, in that
    /// order, so that the chunk the writer waits for always has a buffer.
    fn render_chunks<S, E>(
        &self,
        free: &Mutex<mpsc::Receiver<Vec<u8>>>,
        done: &mpsc::Sender<(usize, Result<Vec<u8>, E>)>,
        new_state: &impl Fn() -> S,
        render: &impl Fn(&mut S, usize, &[T], &mut Vec<u8>) -> Result<(), E>,
    ) {
        let mut state = new_state();
        loop {
            let buffer = free
                .lock()
                .map_err(|_| ())
                .and_then(|rx| rx.recv().map_err(|_| ()));
            let Ok(mut buffer) = buffer else {
                return; // the writer is gone
            };
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.chunks() || self.stop.load(Ordering::Relaxed) {
                return;
            }
            let start = index * CHUNK;
            let chunk = &self.items[start..self.items.len().min(start + CHUNK)];
            buffer.clear();
            let rendered = render(&mut state, index, chunk, &mut buffer).map(|()| buffer);
            if done.send((index, rendered)).is_err() {
                return;
            }
        }
    }
}

/// One thread per CPU this process may use, capped.
fn thread_count() -> usize {
    crate::sys::usable_cpus().min(MAX_THREADS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_numbers(
        _: &mut (),
        index: usize,
        chunk: &[u32],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        for (at, n) in chunk.iter().enumerate() {
            if index > 0 || at > 0 {
                out.push(b',');
            }
            write!(out, "{n}")?;
        }
        Ok(())
    }

    #[test]
    fn many_chunks_come_out_in_order() {
        let items: Vec<u32> = (0..(CHUNK as u32 * 37 + 5)).collect();
        let mut out = Vec::new();
        write(&items, || (), render_numbers, &mut out).unwrap();
        let expected: Vec<String> = items.iter().map(u32::to_string).collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected.join(","));
    }

    #[test]
    fn few_items_and_none() {
        for count in [0u32, 1, CHUNK as u32, CHUNK as u32 + 1] {
            let items: Vec<u32> = (0..count).collect();
            let mut out = Vec::new();
            write(&items, || (), render_numbers, &mut out).unwrap();
            let expected: Vec<String> = items.iter().map(u32::to_string).collect();
            assert_eq!(String::from_utf8(out).unwrap(), expected.join(","));
        }
    }

    #[test]
    fn a_fold_sees_every_item_once() {
        let items: Vec<u64> = (0..(CHUNK as u64 * 9 + 3)).collect();
        let states = fold(
            &items,
            || (0u64, 0usize),
            |(sum, count), chunk| {
                *sum += chunk.iter().sum::<u64>();
                *count += chunk.len();
            },
        );
        let sum: u64 = states.iter().map(|s| s.0).sum();
        let count: usize = states.iter().map(|s| s.1).sum();
        assert_eq!((sum, count), (items.iter().sum(), items.len()));
        assert_eq!(fold(&[] as &[u64], || 0, |_, _| {}), [0]);
    }

    /// A sink that fails after some bytes, as a closed pipe does.
    struct FailingSink(usize);

    impl Write for FailingSink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if self.0 < bytes.len() {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            self.0 -= bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_sink_stops_the_workers_and_gives_its_error() {
        let items: Vec<u32> = (0..(CHUNK as u32 * 50)).collect();
        let err = write(&items, || (), render_numbers, &mut FailingSink(10_000)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_render_error_is_the_answer() {
        let items: Vec<u32> = (0..(CHUNK as u32 * 20)).collect();
        let err = write(
            &items,
            || (),
            |_: &mut (), index, _: &[u32], _: &mut Vec<u8>| {
                if index == 7 {
                    Err(io::Error::other("chunk 7"))
                } else {
                    Ok(())
                }
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "chunk 7");
    }
}
