#include <iostream>
int main() { std::cout << "featpool\n"; }
