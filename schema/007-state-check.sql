-- 007: codes' CHECK on state as equalities joined by OR. SQLite evaluates a
-- CHECK's IN list of more than two constants through a temporary index built
-- each time a row is written: a b-tree, a pager and an 87 KB buffer per
-- UPDATE of a code's state, which was the largest single cost of recording a
-- fetched or published code. The new rule admits exactly the same values and
-- every stored row meets it, so the table's text is edited in place, as
-- SQLite's ALTER TABLE documentation describes for such changes; the runner
-- (db_migrate) increments schema_version after every migration, so other
-- connections read the new text.
PRAGMA writable_schema = ON;
UPDATE sqlite_master SET sql = replace(sql,
    'CHECK (state IN (''planned'', ''fetched'', ''published'', ''failed''))',
    'CHECK (state = ''planned'' OR state = ''fetched'' OR state = ''published'' OR state = ''failed'')')
  WHERE type = 'table' AND name = 'codes';
PRAGMA writable_schema = OFF;
