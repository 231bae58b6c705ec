"""Staff leave: customers handed over to another staff member (在职继承 / 离职继承), claimed, sent, polled, settled."""
