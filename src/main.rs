fn main() {
    println!("rcompose");
}
