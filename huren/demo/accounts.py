"""Every demo hospital's departments and doctors (HZ-1/HZ-3) and its page accounts."""

from __future__ import annotations

from huren.context import Principal
from huren.demo.institutions import DemoOrg
from huren.services.container import Container

#: departments (local code, name, STD_DEPT) and doctors (staff code, name, department) of every demo hospital
DEMO_DEPTS = (("0101", "内科门诊", "A03"), ("0301", "外科门诊", "A04"), ("2001", "急诊科", "A20"))
DEMO_DOCTORS = (("D1001", "王建国", "0101"), ("D1002", "李秀英", "0301"), ("D1003", "阿不都热依木·买买提", "2001"))


def add_staff_and_accounts(c: Container, o: DemoOrg) -> None:
    """A hospital's departments and doctors (HZ-1/HZ-3) and its page accounts: an administrator
    ("admin") and one login per doctor (the staff code), all with the institution's demo password."""
    who = Principal(o.code, o.user, "hospital")
    c.masterdata.upload("dept", {"dept": [{"dept_code": d, "dept_name": n, "dept_std_code": std} for d, n, std in DEMO_DEPTS]}, who)
    c.masterdata.upload(
        "staff", {"staff": [{"staff_code": code, "name": name, "dept_code": dept, "title": "主治医师"} for code, name, dept in DEMO_DOCTORS]}, who
    )
    c.directory.add_credential(o.code, "admin", o.password, role="admin")
    for code, _, _ in DEMO_DOCTORS:
        c.directory.add_credential(o.code, code, o.password, role="doctor")
