//! A session's relay stepped by a driver outside it, for a child serving several
//! sessions from one poll: [`SteppedRelay`] keeps the session's place between two of the
//! driver's waits, says what its sockets are waited for, and takes in what the wait
//! reported. The steps are the one-session relay's own (`LoopState`), so both drivers
//! relay alike.
use super::*;

/// One session's relay between two waits of the driver that serves it.
pub struct SteppedRelay {
    state: LoopState,
    wait: Wait,
}

impl SteppedRelay {
    /// The relay of a session at its start: its sockets non-blocking, the buffers
    /// ready; `initial` holds client bytes read with the start-up.
    pub fn start(
        client: &mut Stream,
        backends: &mut [&mut BackendConn],
        initial: &[u8],
        bufs: &mut RelayBuffers,
    ) -> Self {
        SteppedRelay {
            state: LoopState::start(client, backends, initial, bufs),
            wait: Wait {
                cflags: PollFlags::empty(),
                timeout: nix::poll::PollTimeout::ZERO,
                ready: true,
            },
        }
    }

    /// Everything the session can do without waiting; then it waits (see
    /// [`SteppedRelay::interest`]), or it ended.
    pub fn advance(
        &mut self,
        step: &mut StepIo<'_, '_>,
        relay: &mut Relay<'_>,
    ) -> Result<(), RelayEnd> {
        self.wait = self.state.advance(step, relay)?;
        Ok(())
    }

    /// What the session's client and backends (in its connection order) are waited
    /// for.
    pub fn interest(&self) -> (PollFlags, &[PollFlags]) {
        (self.wait.cflags, self.state.backend_interest())
    }

    /// Bytes are buffered already: the session must be stepped whatever the wait says.
    pub fn ready(&self) -> bool {
        self.wait.ready
    }

    /// How long the session may wait with nothing happening (client_idle_limit while
    /// it is idle); None: for ever.
    pub fn idle_limit(&self) -> Option<std::time::Duration> {
        let ms = i32::from(self.wait.timeout);
        u64::try_from(ms)
            .ok()
            .map(std::time::Duration::from_millis)
            .filter(|_| !self.wait.ready)
    }

    /// Takes in what the driver's wait reported for the session (`cev`: the client's
    /// events, `bev`: its backends').
    pub fn absorb(
        &mut self,
        cev: PollFlags,
        bev: &[PollFlags],
        step: &mut StepIo<'_, '_>,
        relay: &mut Relay<'_>,
    ) -> Result<(), RelayEnd> {
        self.state.set_backend_events(bev);
        self.state.absorb(cev, step, relay)
    }

    /// The end of the session's relay: its sockets blocking again, and whether its
    /// connections can be pooled again (in `outcome`).
    pub fn finish(
        self,
        end: RelayEnd,
        client: &mut Stream,
        backends: &mut [&mut BackendConn],
        router: &Router,
        bufs: &RelayBuffers,
        outcome: &mut RelayOutcome,
    ) -> RelayEnd {
        self.state
            .finish(end, client, backends, router, bufs, outcome)
    }
}
