//! A single-consumer queue between tasks of one glommio executor.
//!
//! The consumer takes everything queued at once ([`Mailbox::take_all`]),
//! which is how the server loop batches all events that arrived while it
//! was busy (one fsync for all of them). Producers either push and drop on
//! overflow ([`Mailbox::try_push`], for peer traffic that Raft retransmits)
//! or wait for room ([`Mailbox::push`], for client commands: back-pressure
//! on the socket instead of unbounded memory).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

pub struct Mailbox<T> {
    inner: Rc<RefCell<Inner<T>>>,
}

struct Inner<T> {
    queue: VecDeque<T>,
    capacity: usize,
    consumer: Option<Waker>,
    producers: Vec<Waker>,
}

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Mailbox { inner: self.inner.clone() }
    }
}

impl<T> Mailbox<T> {
    pub fn new(capacity: usize) -> Mailbox<T> {
        let inner = Inner { queue: VecDeque::new(), capacity, consumer: None, producers: Vec::new() };
        Mailbox { inner: Rc::new(RefCell::new(inner)) }
    }

    /// Queues `item` unless the mailbox is full; returns it then.
    pub fn try_push(&self, item: T) -> Result<(), T> {
        let mut inner = self.inner.borrow_mut();
        if inner.queue.len() >= inner.capacity {
            return Err(item);
        }
        inner.queue.push_back(item);
        if let Some(waker) = inner.consumer.take() {
            waker.wake();
        }
        Ok(())
    }

    /// Queues `item`, waiting for room.
    pub async fn push(&self, item: T) {
        let mut item = Some(item);
        poll_fn(|cx| {
            let value = item.take().expect("polled after completion");
            match self.try_push(value) {
                Ok(()) => Poll::Ready(()),
                Err(value) => {
                    item = Some(value);
                    self.inner.borrow_mut().producers.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Waits until something is queued, then takes all of it.
    pub async fn take_all(&self) -> Vec<T> {
        poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            if inner.queue.is_empty() {
                inner.consumer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let items: Vec<T> = inner.queue.drain(..).collect();
            for waker in inner.producers.drain(..) {
                waker.wake();
            }
            Poll::Ready(items)
        })
        .await
    }

    /// Drops everything queued (a peer link that lost its connection).
    pub fn clear(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.queue.clear();
        for waker in inner.producers.drain(..) {
            waker.wake();
        }
    }

    pub fn len(&self) -> usize {
        self.inner.borrow().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.borrow().queue.is_empty()
    }
}
