// A declared tag's template names its parameters, and uses every one.
cachemacro::tags! {
    pub author(id: u64) = "author:<user_id>";
    pub feed(user_id: u64, page: u32) = "feed:<user_id>";
}

fn main() {}
