//! A generational slab: values live at small indices that are reused after removal, and
//! a key carries the slot's generation so a key kept past its value's removal is
//! recognised as stale instead of reaching the slot's next occupant.
//!
//! Free slots are reused last-freed-first, so the same sequence of operations always
//! yields the same keys (deterministic simulation depends on it).

/// Names one slab entry: an index and the generation it was inserted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` and returns its key, or gives the value back when the index space
    /// (u32) is exhausted.
    pub(crate) fn insert(&mut self, value: T) -> Result<Key, T> {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let Ok(index) = u32::try_from(self.slots.len()) else {
                    return Err(value);
                };
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        debug_assert!(slot.value.is_none(), "free list names an occupied slot");
        slot.value = Some(value);
        self.len += 1;
        Ok(Key {
            index,
            generation: slot.generation,
        })
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// The keys of the values held, in index order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            slot.value.as_ref().map(|_| Key {
                index: index as u32,
                generation: slot.generation,
            })
        })
    }

    /// Removes the value; its key (and every copy of it) is stale from now on.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        // Wrapping after 2^32 reuses of one slot could revive a very old key; a key
        // would have to be kept that long, which no caller does.
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_keys_are_stale_and_slots_are_reused_with_a_new_generation() {
        let mut slab = Slab::default();
        let a = slab.insert("a").expect("room");
        let b = slab.insert("b").expect("room");
        assert_eq!(
            (a, b),
            (
                Key {
                    index: 0,
                    generation: 0
                },
                Key {
                    index: 1,
                    generation: 0
                }
            )
        );
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        let c = slab.insert("c").expect("room");
        assert_eq!(
            c,
            Key {
                index: 0,
                generation: 1
            }
        );
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.get(c), Some(&"c"));
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 2);
    }
}
