use std::cell::RefCell;
use std::rc::Rc;

use skillbridge::{State, skill};

/// A state that cannot cross threads.
#[skill]
async fn count(counter: State<Rc<RefCell<u32>>>) -> u32 {
    *counter.borrow()
}

fn main() {}
