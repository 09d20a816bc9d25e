#!/usr/bin/env python3
"""Writes raw/shop.sqlite beside this script: two tables with NULLs and values SQLite accepts
but their declared types do not (Python's standard sqlite3; nothing to install)."""
import os
import sqlite3

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "raw", "shop.sqlite")
if os.path.exists(path):
    os.remove(path)
con = sqlite3.connect(path)
con.executescript("""
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, joined DATE);
INSERT INTO customers VALUES (1, 'Ada', '2024-01-05'), (2, NULL, NULL), (3, 'Bob', '2024-02-30');
CREATE TABLE orders (id INTEGER, customer_id INTEGER, amount NUMERIC(10,2), note TEXT);
INSERT INTO orders VALUES (1, 1, 9.99, NULL), (2, 'abc', 5, 'text in an INTEGER column'),
                          (3, 2, 1.5, 'ok'), (4, 2.5, 3, 'fraction in an INTEGER column'),
                          (5, NULL, NULL, NULL);
""")
con.commit()
con.close()
print(f"wrote {path}")
