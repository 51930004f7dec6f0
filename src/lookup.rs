//! Host names looked up off the reactor thread (for the NATS and AMQP connections): a helper
//! thread per lookup resolves the name, hands the addresses back through a channel and wakes
//! the loop, which then takes the answer. One lookup at a time: a stuck one holds back the next.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use mio::Waker;

/// A lookup's number and what it found.
pub type Answer = (u64, io::Result<Vec<SocketAddr>>);

pub struct Resolver {
    waker: Arc<Waker>,
    answers: Receiver<Answer>,
    sender: Sender<Answer>,
    /// Numbers the lookups, so a late answer to one given up is recognised and dropped.
    last: u64,
    /// Lookups started and not yet answered.
    running: usize,
}

impl Resolver {
    /// `waker` wakes the reactor when an answer is ready.
    pub fn new(waker: Arc<Waker>) -> Resolver {
        let (sender, answers) = channel();
        Resolver {
            waker,
            answers,
            sender,
            last: 0,
            running: 0,
        }
    }

    /// Whether a lookup is still out.
    pub fn is_busy(&self) -> bool {
        self.running > 0
    }

    /// Looks `host_port` up on a helper thread; returns the lookup's number.
    pub fn start(&mut self, host_port: String) -> io::Result<u64> {
        self.last += 1;
        let lookup = self.last;
        let (sender, waker) = (self.sender.clone(), Arc::clone(&self.waker));
        std::thread::Builder::new()
            .name("msgbus-resolve".into())
            .spawn(move || {
                let addrs = host_port.to_socket_addrs().map(Iterator::collect);
                let _ = sender.send((lookup, addrs));
                let _ = waker.wake();
            })?;
        self.running += 1;
        Ok(lookup)
    }

    /// The next answer that came, if any.
    pub fn take(&mut self) -> Option<Answer> {
        let answer = self.answers.try_recv().ok()?;
        self.running = self.running.saturating_sub(1);
        Some(answer)
    }
}
