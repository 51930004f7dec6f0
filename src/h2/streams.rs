//! A map by stream id for one connection's open streams: a vector kept in id order. A client's
//! stream ids only increase, so a new stream is pushed at the end and a lookup is a binary
//! search; an entry costs its own size and nothing more, where a tree or a hash table costs
//! two to three times that (idle streams are what a push server holds most of).
//!
//! Removing shifts the later entries: at most the connection's stream limit of them.

/// Open streams by id, in id order.
#[derive(Debug)]
pub struct StreamMap<T> {
    entries: Vec<(u32, T)>,
}

impl<T> Default for StreamMap<T> {
    fn default() -> Self {
        StreamMap {
            entries: Vec::new(),
        }
    }
}

impl<T> StreamMap<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, id: u32) -> Result<usize, usize> {
        // The newest stream is the one most often asked for.
        match self.entries.last() {
            Some(&(last, _)) if last == id => Ok(self.entries.len() - 1),
            Some(&(last, _)) if last < id => Err(self.entries.len()),
            _ => self.entries.binary_search_by_key(&id, |&(k, _)| k),
        }
    }

    pub fn contains(&self, id: u32) -> bool {
        self.find(id).is_ok()
    }

    pub fn get(&self, id: u32) -> Option<&T> {
        self.find(id).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.find(id).ok().map(|i| &mut self.entries[i].1)
    }

    /// Adds or replaces the entry for `id`; a new id above every other is a push.
    pub fn insert(&mut self, id: u32, value: T) {
        match self.find(id) {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => self.entries.insert(i, (id, value)),
        }
    }

    /// Removes `id`'s entry; room left over by a burst of streams is given back.
    pub fn remove(&mut self, id: u32) -> Option<T> {
        let i = self.find(id).ok()?;
        let (_, value) = self.entries.remove(i);
        if self.entries.capacity() > 8 && self.entries.len() <= self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        Some(value)
    }

    pub fn clear(&mut self) {
        self.entries = Vec::new();
    }

    /// Entries in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.entries.iter().map(|(id, value)| (*id, value))
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, value)| value)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.iter_mut().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::StreamMap;

    #[test]
    fn in_order_whatever_the_order_of_insertion_and_removal() {
        let mut map = StreamMap::new();
        for id in [1, 3, 7, 5, 9] {
            map.insert(id, id * 10);
        }
        assert_eq!(map.remove(3), Some(30));
        assert_eq!(map.remove(3), None);
        map.insert(9, 91);
        let got: Vec<(u32, u32)> = map.iter().map(|(id, v)| (id, *v)).collect();
        assert_eq!(got, [(1, 10), (5, 50), (7, 70), (9, 91)]);
        assert_eq!(map.get(7), Some(&70));
        assert_eq!(map.get(2), None);
        assert_eq!(map.get(11), None);
        assert!(map.contains(1) && !map.contains(0));
        *map.get_mut(1).unwrap() += 1;
        assert_eq!(map.values().copied().collect::<Vec<_>>(), [11, 50, 70, 91]);
        assert_eq!(map.len(), 4);
        map.clear();
        assert!(map.is_empty());
    }

    #[test]
    fn a_burst_gives_its_room_back() {
        let mut map = StreamMap::new();
        for id in 0..1000u32 {
            map.insert(2 * id + 1, ());
        }
        for id in 0..995u32 {
            map.remove(2 * id + 1);
        }
        assert_eq!(map.len(), 5);
        assert!(map.entries.capacity() <= 20, "{}", map.entries.capacity());
    }
}
